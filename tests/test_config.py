"""Configuration: precedence flag > env > file > default, and one clear error per bad value."""

from __future__ import annotations

from pathlib import Path

import pytest

from ai_employee.base.config import KEYS, Config, default_config_text, env_name, load_config
from ai_employee.base.errors import ConfigError
from ai_employee.notes.vault import Vault


def _write(vault: Vault, text: str) -> None:
    (vault.root / ".ai-employee.toml").write_text(text)


def test_defaults_match_the_design_table(vault: Vault, tmp_path: Path) -> None:
    config = load_config(vault.root, env={})
    assert config.apps_dir == tmp_path / "apps"
    assert config.auto_execute_types == ("claude_app", "claude_task", "claude_code")
    assert (config.max_parallel, config.settle_seconds, config.sweep_seconds) == (1, 2.0, 60.0)
    assert (config.max_attempts, config.retry_initial_seconds, config.retry_max_seconds) == (
        3,
        30.0,
        900.0,
    )
    assert config.permission_mode == "acceptEdits"
    assert config.sources["max_parallel"] == "default"


def test_precedence_flag_over_env_over_file_over_default(vault: Vault) -> None:
    _write(vault, "max_parallel = 2\nmax_attempts = 5\n")
    env = {"AI_EMPLOYEE_MAX_PARALLEL": "3"}
    config = load_config(vault.root, env=env, flags={"max_parallel": 4})
    assert config.max_parallel == 4 and config.sources["max_parallel"] == "flag --max-parallel"
    config = load_config(vault.root, env=env)
    assert (
        config.max_parallel == 3
        and config.sources["max_parallel"] == "env AI_EMPLOYEE_MAX_PARALLEL"
    )
    assert config.max_attempts == 5 and config.sources["max_attempts"].endswith(".ai-employee.toml")


def test_vault_flag_and_env_agree(vault: Vault) -> None:
    by_flag = load_config(vault.root, env={})
    by_env = load_config(None, env={"AI_EMPLOYEE_VAULT": str(vault.root)})
    assert by_flag.vault == by_env.vault == vault.root
    assert by_flag.apps_dir == by_env.apps_dir


def test_env_lists_booleans_and_paths(vault: Vault, tmp_path: Path) -> None:
    env = {
        "AI_EMPLOYEE_AUTO_EXECUTE_TYPES": "claude_app, file_drop ,",
        "AI_EMPLOYEE_POLLING": "yes",
        "AI_EMPLOYEE_EXTRA_ROOTS": "/srv/a,rel",
    }
    config = load_config(vault.root, env=env, cwd=tmp_path)
    assert config.auto_execute_types == ("claude_app", "file_drop")
    assert config.polling is True
    assert config.extra_roots == (Path("/srv/a"), tmp_path / "rel")
    for raw, expected in [("0", False), ("no", False), ("TRUE", True), ("1", True)]:
        assert load_config(vault.root, env={"AI_EMPLOYEE_POLLING": raw}).polling is expected


def test_relative_paths_in_the_file_resolve_against_the_vault(vault: Vault) -> None:
    _write(vault, 'apps_dir = "../work"\nextra_roots = ["shared"]\n')
    config = load_config(vault.root, env={})
    assert config.apps_dir == vault.root.parent / "work"
    assert config.extra_roots == (vault.root / "shared",)


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("colour = 1\n", {}, "colour = 1 from "),
        ("max_parallel = 0\n", {}, "max_parallel = 0 from"),
        ('planner = "magic"\n', {}, "expected one of template, claude"),
        ("polling = 3\n", {}, "expected true or false"),
        (
            "",
            {"AI_EMPLOYEE_MAX_ATTEMPTS": "many"},
            "max_attempts = 'many' from env AI_EMPLOYEE_MAX_ATTEMPTS",
        ),
        ("", {"AI_EMPLOYEE_POLLING": "maybe"}, "polling = 'maybe' from env AI_EMPLOYEE_POLLING"),
        ("[types.git_push]\nrequires_aproval = true\n", {}, "types.git_push.requires_aproval"),
        ("max_parallel = \n", {}, "not valid TOML"),
        ('vault = "x"\n', {}, "the vault is chosen by --vault or AI_EMPLOYEE_VAULT"),
    ],
)
def test_bad_values_name_key_value_and_source(
    vault: Vault, text: str, env: dict[str, str], message: str
) -> None:
    _write(vault, text)
    with pytest.raises(ConfigError) as caught:
        load_config(vault.root, env=env)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    "key", ["on_pending_approval", "on_done", "on_failed", "on_needs_attention"]
)
def test_notification_hooks_are_checked_when_the_config_loads(vault: Vault, key: str) -> None:
    config = load_config(vault.root, env={})
    assert getattr(config, key) == "" and config.hook_timeout_seconds == 30
    good = "notify-send 'ai-employee' {task_id} --file={task_file} {workdir} {prompt_file}"
    shell = "sh -c 'echo ${HOME} {task_id}'"  # a shell's ${...} is not a placeholder
    _write(vault, f"{key} = {good!r}\n")
    assert getattr(load_config(vault.root, env={}), key) == good
    assert getattr(load_config(vault.root, env={env_name(key): shell}), key) == shell
    path = vault.root / ".ai-employee.toml"
    for raw, source, why in [
        ("notify 'unclosed", f"from {path}", "cannot be split: No closing quotation"),
        ("notify {title}", f"from {path}", "unknown placeholder {title} (known: {prompt_file}"),
    ]:
        _write(vault, f"{key} = {raw!r}\n")
        with pytest.raises(ConfigError) as caught:
            load_config(vault.root, env={})
        assert str(caught.value).startswith(f"{key} = {raw!r} {source}: {why}")
    with pytest.raises(ConfigError) as caught:
        load_config(vault.root, env={env_name(key): "x {tasks_id}"})
    assert str(caught.value).startswith(
        f"{key} = 'x {{tasks_id}}' from env {env_name(key)}: unknown placeholder {{tasks_id}}"
    )


def test_agent_command_is_checked_by_the_same_rule(vault: Vault) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(vault.root, env={"AI_EMPLOYEE_AGENT_COMMAND": "agent {prompt}"})
    assert "agent_command = 'agent {prompt}' from env AI_EMPLOYEE_AGENT_COMMAND: unknown" in str(
        caught.value
    )


def test_hook_timeout_has_a_floor(vault: Vault) -> None:
    with pytest.raises(ConfigError, match=r"hook_timeout_seconds = '0' .*at least 1"):
        load_config(vault.root, env={"AI_EMPLOYEE_HOOK_TIMEOUT_SECONDS": "0"})


def test_unknown_env_variables_are_not_configuration(vault: Vault) -> None:
    env = {"AI_EMPLOYEE_TASK_ID": "abc", "AI_EMPLOYEE_TASK_FILE": "/x", "AI_EMPLOYEE_COLOUR": "red"}
    assert isinstance(load_config(vault.root, env=env), Config)


def test_type_overrides(vault: Vault) -> None:
    _write(
        vault,
        '[types.git_push]\nrequires_approval = true\nallowed_tools = ["Bash(git push:*)"]\n'
        "task_timeout_seconds = 60\n",
    )
    config = load_config(vault.root, env={})
    assert config.requires_approval("git_push")
    assert config.for_type("git_push").allowed_tools == ("Bash(git push:*)",)
    assert config.timeout_for("git_push") == 60 and config.timeout_for("claude_app") == 1800
    assert not config.requires_approval("claude_app") and config.requires_approval("unknown")


def test_the_commented_defaults_file_is_valid_and_complete(vault: Vault) -> None:
    text = default_config_text()
    names = {spec.name for spec in KEYS}
    top_level = text.split("# [types.")[0]
    uncommented = [ln[2:] for ln in top_level.splitlines() if ln[2:].split(" = ")[0] in names]
    assert len(uncommented) == len(KEYS)
    _write(vault, "\n".join(uncommented) + "\n")
    config = load_config(vault.root, env={})
    assert all(
        source.endswith(".ai-employee.toml") for k, source in config.sources.items() if k != "vault"
    )
    assert config.types == {}
    assert env_name("max_parallel") == "AI_EMPLOYEE_MAX_PARALLEL"


def test_a_work_dir_behind_a_symlink_must_resolve_inside_the_allowed_roots(tmp_path: Path) -> None:
    from ai_employee.base.errors import NoteRefused
    from ai_employee.notes.vault import workdir_for

    apps = tmp_path / "apps"
    (apps / "py").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (apps / "go").symlink_to(elsewhere)  # a language folder that leads out
    (apps / "py" / "shop").symlink_to(elsewhere)  # an app folder that leads out
    (apps / "py" / "fine").mkdir()
    roots = (apps,)
    assert workdir_for(apps, roots, "t1", "py", "fine") == apps / "py" / "fine"
    assert workdir_for(apps, roots, "t1", "py", "new") == apps / "py" / "new"
    assert workdir_for(apps, roots, "t1") == apps / "tasks" / "t1"
    for language, app in (("go", "x"), ("py", "shop")):
        with pytest.raises(NoteRefused, match="resolves outside the allowed roots"):
            workdir_for(apps, roots, "t1", language, app)
        # Named in extra_roots, the place is allowed.
        assert workdir_for(apps, (apps, elsewhere), "t1", language, app) == apps / language / app
