"""ai-employee as a person installs it: from the built wheel in a fresh virtualenv, and with
`pipx install .`. Nothing here imports the checkout: each command is the installed program.

The wheel and sdist come from TEST_DIST_DIR (scripts/test.sh builds them once) or are built here.
"""

from __future__ import annotations

import json
import os
import plistlib
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("TEST_DIST_DIR")
    if given:
        return Path(given)
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return out


def _one(dist: Path, pattern: str) -> Path:
    [found] = dist.glob(pattern)
    return found


def _clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AI_EMPLOYEE_", "VIRTUAL_ENV", "PYTHON", "PIP_"))
    }
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin"  # not our .venv: only what was installed
    env.update(extra)
    return env


def test_the_wheel_holds_what_the_program_reads_at_run_time(dist: Path) -> None:
    names = set(zipfile.ZipFile(_one(dist, "*.whl")).namelist())
    for needed in [
        "ai_employee/templates/ai-employee.service.in",
        "ai_employee/templates/Company_Handbook.md",
        "ai_employee/templates/Task.md",
        "ai_employee/docs/OPERATIONS.md",
        "ai_employee/py.typed",
        "ai_employee-0.1.0.dist-info/licenses/LICENSE",
        "ai_employee-0.1.0.dist-info/entry_points.txt",
    ]:
        assert needed in names, needed
    assert not any(n.startswith("tests/") for n in names)


def test_the_sdist_holds_the_whole_test_suite_and_the_license(dist: Path) -> None:
    with tarfile.open(_one(dist, "*.tar.gz")) as sdist:
        names = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
    in_checkout = {
        str(p.relative_to(ROOT))
        for p in (ROOT / "tests").iterdir()
        if p.suffix == ".py" or p.name == "conftest.py"
    }
    assert in_checkout <= names, in_checkout - names
    for needed in ["LICENSE", "pyproject.toml", "constraints.txt", "docs/OPERATIONS.md"]:
        assert needed in names, needed


@pytest.fixture(scope="module")
def wheel_venv(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    venv = tmp_path_factory.mktemp("wheel") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-c",
            str(ROOT / "constraints.txt"),
            str(_one(dist, "*.whl")),
        ],
        check=True,
        timeout=600,
        env=_clean_env(),
    )
    yield venv


def _run(
    program: Path, *args: str, env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(program), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def _use_it(program: Path, python: Path, home: Path) -> None:
    """What the README tells a new user to do after installing, and what each step must show."""
    vault = home / "My Vault"
    agent = (
        f"{python} -c \"import pathlib, sys; pathlib.Path(sys.argv[1], 'index.html')"
        f".write_text('hello')\" {{workdir}}"
    )
    env = _clean_env(HOME=str(home), AI_EMPLOYEE_AGENT="command", AI_EMPLOYEE_AGENT_COMMAND=agent)
    home.mkdir(exist_ok=True)

    def ok(*args: str) -> subprocess.CompletedProcess[str]:
        done = _run(program, "--vault", str(vault), *args, env=env, cwd=home)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr, done.stderr
        return done

    assert "created" in ok("init").stdout
    added = json.loads(
        ok("add", "Hello page", "--type", "claude_app", "--language", "html", "--app", "hello",
           "--body", "A page that says hello.", "--json").stdout
    )  # fmt: skip
    assert ok("once").stdout.strip() == (
        "ran 1: 1 succeeded, 0 failed, 0 to retry later, 0 cancelled"
    )
    assert (home / "apps" / "html" / "hello" / "index.html").read_text() == "hello"
    status = json.loads(ok("status", "--json").stdout)
    assert status["counts"]["Done"] == {"done": 1}, status
    done_note = (vault / "Done" / "Hello page.md").read_text()
    assert f"task_id: {added['task_id']}" in done_note
    unit = ok("service", "install", "--print", "--manager", "systemd").stdout
    assert f"ExecStart={python} -m ai_employee run --vault " in unit
    [doc] = [line[len("Documentation=") :] for line in unit.splitlines() if "Documentation" in line]
    doc_path = Path(unquote(urlparse(doc.replace("%%", "%")).path))
    assert doc_path.is_file() and doc_path.is_relative_to(python.parent.parent), doc_path
    plist = plistlib.loads(
        ok("service", "install", "--print", "--manager", "launchd").stdout.encode()
    )
    assert plist["ProgramArguments"][:4] == [str(python), "-m", "ai_employee", "run"]
    status_said = ok("service", "status", "--manager", "systemd").stdout
    assert status_said.startswith(
        f"unit: {home}/.config/systemd/user/ai-employee.service (not installed)"
    )
    assert not (home / ".config" / "systemd").exists(), "--print and status write nothing"


def test_a_fresh_venv_from_the_wheel_runs_init_add_once_status_and_service(
    wheel_venv: Path, tmp_path: Path
) -> None:
    _use_it(wheel_venv / "bin" / "ai-employee", wheel_venv / "bin" / "python", tmp_path / "home")


def test_pipx_install_from_the_checkout(tmp_path: Path) -> None:
    pipx_home, bin_dir = tmp_path / "pipx", tmp_path / "bin"
    env = _clean_env(
        PIPX_HOME=str(pipx_home),
        PIPX_BIN_DIR=str(bin_dir),
        PIPX_MAN_DIR=str(tmp_path / "man"),
        PIP_CONSTRAINT=str(ROOT / "constraints.txt"),
    )
    installed = subprocess.run(
        [sys.executable, "-m", "pipx", "install", str(ROOT)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    program = bin_dir / "ai-employee"
    python = pipx_home / "venvs" / "ai-employee" / "bin" / "python"
    version = _run(program, "--version", env=env, cwd=tmp_path)
    assert version.stdout.strip() == "ai-employee 0.1.0"
    _use_it(program, python, tmp_path / "home")
