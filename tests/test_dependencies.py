"""Tasks that wait for others (`after:`): the names, the cycles, and the real service's order."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from ai_employee.base.config import Config
from ai_employee.base.errors import NoteRefused
from ai_employee.notes.after import find_cycle, note_name, references
from ai_employee.notes.vault import Folder, Vault

from .helpers import wait_for
from .service_harness import (
    cli,
    drop,
    events,
    note,
    person,
    running_service,
    svc_config,
    wait_status,
)

FAKE = Path(__file__).with_name("fake_agent.py")


# --- the pure part ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "refs"),
    [
        (None, ()),
        ("", ()),
        ("[[Build the app]]", ("[[Build the app]]",)),
        ([["Build the app"]], ("[[Build the app]]",)),  # `after: [[Build the app]]` unquoted
        (["a", [["b"]], "a", " c  d "], ("a", "[[b]]", "c  d")),
        ("k3x9pq", ("k3x9pq",)),
    ],
)
def test_after_names_one_task_or_a_list(value: object, refs: tuple[str, ...]) -> None:
    assert references(value) == refs


@pytest.mark.parametrize(
    "value", [3, {"a": 1}, [""], ["a", None], [["a", "b"]], ["x"] * 0 + [True]]
)
def test_after_that_names_no_task_is_refused_with_the_shape(value: object) -> None:
    with pytest.raises(NoteRefused, match="names the tasks this one runs after"):
        references(value)


def test_after_names_at_most_fifty() -> None:
    with pytest.raises(NoteRefused, match="at most 50"):
        references([f"t{i}" for i in range(51)])


@pytest.mark.parametrize(
    ("ref", "name"),
    [
        ("[[Build the app]]", "Build the app.md"),
        ("[[Done/Build the app#Result|the app]]", "Build the app.md"),
        ("Build the app.md", "Build the app.md"),
        ("Needs_Action/Build", "Build.md"),
    ],
)
def test_a_reference_means_a_note_name(ref: str, name: str) -> None:
    assert note_name(ref) == name


def test_find_cycle() -> None:
    assert find_cycle("a", {"a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c", "a"]
    assert find_cycle("a", {"a": ["a"]}) == ["a", "a"]
    assert find_cycle("a", {"a": ["b", "c"], "b": ["c"], "c": []}) is None
    assert find_cycle("a", {"a": ["b"], "b": ["c"], "c": ["b"]}) is None  # not through a
    long = {str(i): [str(i + 1)] for i in range(999)} | {"999": ["0"]}
    cycle = find_cycle("0", long)
    assert cycle is not None and len(cycle) == 1001


# --- the real service ------------------------------------------------------------------------


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "ledger.txt"
    path.touch()
    monkeypatch.setenv("FAKE_LEDGER", str(path))
    return path


def agent_config(vault: Vault, **overrides: object) -> Config:
    command = f"{sys.executable} {FAKE} {{task_id}} {{workdir}} {{prompt_file}}"
    return svc_config(
        vault,
        agent="command",
        agent_command=command,
        retry_initial_seconds=0,
        retry_max_seconds=0,
        **{"max_parallel": 4, **overrides},
    )


def task(title: str, after: str = "", behave: str = "ok") -> str:
    after_line = f"after: {after}\n" if after else ""
    return f"---\ntitle: {title}\ntype: claude_app\n{after_line}---\nbehave: {behave}\n"


def ledger_order(ledger: Path) -> list[tuple[str, str, int]]:
    out = []
    for line in ledger.read_text().splitlines():
        task_id, event, _pid, ns = line.split()
        out.append((task_id, event, int(ns)))
    return out


def test_a_chain_runs_in_order_and_a_failed_middle_is_retried_before_the_last_starts(
    vault: Vault, tmp_path: Path, ledger: Path
) -> None:
    with running_service(agent_config(vault)):
        drop(vault, tmp_path, "C.md", task("C", after='"[[B]]"'))
        drop(vault, tmp_path, "B.md", task("B", after="A", behave="fail-once"))
        drop(vault, tmp_path, "A.md", task("A", behave="sleep 0.3"))
        done = vault.folder(Folder.DONE)
        for name in ("A.md", "B.md", "C.md"):
            wait_status(done / name, "done", 20)
    ids = {name: note(done / f"{name}.md").task_id for name in "ABC"}
    names = {v: k for k, v in ids.items()}
    order = [(names[t], event) for t, event, _ in ledger_order(ledger)]
    assert order == [
        ("A", "start"),
        ("A", "end"),
        ("B", "start"),
        ("B", "end"),  # its first run failed, retried before C may start
        ("B", "start"),
        ("B", "end"),
        ("C", "start"),
        ("C", "end"),
    ], order
    c = note(done / "C.md")
    assert c.meta["after_ids"] == {"[[B]]": ids["B"]}
    assert "waiting_for" not in c.meta, "released: the line is gone"
    assert note(done / "B.md").meta["after_ids"] == {"A": ids["A"]}


def _dashboard(vault: Vault) -> str:
    return vault.dashboard.read_text(encoding="utf-8")


def test_a_waiting_task_says_what_it_waits_for_and_its_prompt_gets_what_was_produced(
    vault: Vault, tmp_path: Path, ledger: Path
) -> None:
    gate = tmp_path / "gate"
    needs = vault.folder(Folder.NEEDS_ACTION)
    with running_service(agent_config(vault)):
        drop(vault, tmp_path, "Build.md", task("Build", behave=f"gate {gate}"))
        build_id = wait_for(lambda: note(needs / "Build.md").task_id, what="an id")
        drop(vault, tmp_path, "Docs.md", task("Docs", after='["[[Build]]"]'))
        docs = wait_for(
            lambda: (n := note(needs / "Docs.md")).meta.get("waiting_for") and n,
            what="Docs to say what it waits for",
        )
        assert docs.meta["waiting_for"] == f"Build ({build_id})"
        assert docs.meta["status"] == "planned" and docs.meta["after_ids"] == {
            "[[Build]]": build_id
        }
        wait_for(lambda: f"Build ({build_id})" in _dashboard(vault), what="Dashboard.md")
        # a rename of the dependency changes nothing: the name was resolved to its task
        (needs / "Build.md").rename(needs / "Build the app.md")
        gate.touch()
        wait_status(vault.folder(Folder.DONE) / "Docs.md", "done", 20)
    docs_id = note(vault.folder(Folder.DONE) / "Docs.md").task_id
    prompt = (vault.machinery / "prompts" / f"{docs_id}.md").read_text()
    assert "## What the tasks this one runs after produced" in prompt
    assert f"### Build ({build_id})" in prompt and f"built it for {build_id}" in prompt
    assert f"Its work dir: {vault.root.parent / 'apps' / 'tasks' / build_id}" in prompt


def test_a_cycle_of_three_is_refused_naming_it_and_released_when_an_edit_breaks_it(
    vault: Vault, tmp_path: Path, ledger: Path
) -> None:
    needs = vault.folder(Folder.NEEDS_ACTION)

    def said(name: str) -> str:
        return str(note(needs / f"{name}.md").meta.get("waiting_for") or "")

    with running_service(agent_config(vault)):
        drop(vault, tmp_path, "X.md", task("X", after="Z"))
        drop(vault, tmp_path, "Y.md", task("Y", after="X"))
        drop(vault, tmp_path, "Z.md", task("Z", after="Y"))
        for name in "XYZ":
            wait_for(
                lambda name=name: said(name).startswith("refused: a cycle of dependencies"),
                what=f"{name} refused for the cycle",
            )
        ids = {n: note(needs / f"{n}.md").task_id for n in "XYZ"}
        for name in "XYZ":  # each names the whole cycle, from itself
            assert said(name).startswith(f"refused: a cycle of dependencies: {name} ({ids[name]})")
            assert all(f"{n} ({ids[n]})" in said(name) for n in "XYZ")
            assert note(needs / f"{name}.md").meta["status"] == "planned"
        x, y, z = (f"{n} ({ids[n]})" for n in "XYZ")
        assert said("X") == (
            f"refused: a cycle of dependencies: {x} -> {z} -> {y} -> {x}; "
            "nothing in it runs until an `after:` in it changes"
        )
        wait_for(lambda: _dashboard(vault).count("refused: a cycle") == 3, what="Dashboard.md")
        assert len(events(vault, "dependency cycle")) == 1, "the log is told once"
        assert not ledger.read_text(), "nothing in the cycle ran"
        # a person breaks it: X runs after nothing; then X, Y, Z run in that order
        text = (needs / "X.md").read_text().replace("after: Z\n", "")
        drop(vault, tmp_path, "X.md", text)
        done = vault.folder(Folder.DONE)
        for name in "XYZ":
            wait_status(done / f"{name}.md", "done", 20)
    starts = [t for t, event, _ in ledger_order(ledger) if event == "start"]
    assert starts == [ids["X"], ids["Y"], ids["Z"]]


def test_a_task_after_itself_is_refused(vault: Vault, tmp_path: Path, ledger: Path) -> None:
    needs = vault.folder(Folder.NEEDS_ACTION)
    with running_service(agent_config(vault)):
        drop(vault, tmp_path, "Loop.md", task("Loop", after='"[[Loop]]"'))
        wait_for(
            lambda: "names the task itself" in str(note(needs / "Loop.md").meta.get("waiting_for")),
            what="refused",
        )
    assert not ledger.read_text()


def test_an_after_that_names_no_task_refuses_the_note_untouched(
    vault: Vault, tmp_path: Path, ledger: Path
) -> None:
    text = "---\ntitle: Odd\nafter: 3\n---\nbehave: ok\n"
    with running_service(agent_config(vault)):
        path = drop(vault, tmp_path, "Odd.md", text)
        wait_for(lambda: events(vault, "note refused"), what="the refusal")
        assert "names the tasks this one runs after" in events(vault, "note refused")[0]["error"]
        assert path.read_text() == text
        wait_for(lambda: "names the tasks this one runs after" in _dashboard(vault), what="dash")


def test_a_missing_dependency_waits_named_and_is_released_when_it_appears(
    vault: Vault, tmp_path: Path, ledger: Path
) -> None:
    needs = vault.folder(Folder.NEEDS_ACTION)
    with running_service(agent_config(vault)):
        drop(vault, tmp_path, "Deploy.md", task("Deploy", after='"[[Release notes]]"'))
        waiting = wait_for(
            lambda: (n := note(needs / "Deploy.md")).meta.get("waiting_for") and n,
            what="Deploy to name the missing task",
        )
        assert waiting.meta["waiting_for"] == "[[Release notes]]: no such task yet"
        assert waiting.meta["after_ids"] == {"[[Release notes]]": None}
        drop(vault, tmp_path, "Release notes.md", task("Release notes"))
        wait_status(vault.folder(Folder.DONE) / "Deploy.md", "done", 20)
    order = [event for _, event, _ in ledger_order(ledger)]
    assert order == ["start", "end", "start", "end"]


def test_a_failed_dependency_needs_attention_and_its_retry_releases_the_task(
    vault: Vault, tmp_path: Path, ledger: Path
) -> None:
    needs, failed = vault.folder(Folder.NEEDS_ACTION), vault.folder(Folder.FAILED)
    with running_service(agent_config(vault, max_attempts=1)):
        drop(vault, tmp_path, "Migrate.md", task("Migrate", behave="fail"))
        drop(vault, tmp_path, "Cleanup.md", task("Cleanup", after="Migrate"))
        migrate = wait_status(failed / "Migrate.md", "failed", 20)
        said = f"Migrate ({migrate.task_id}) is failed: retry it to go on"
        wait_for(lambda: note(needs / "Cleanup.md").meta.get("waiting_for") == said, what="why")
        wait_for(lambda: f"waits for {said}" in _dashboard(vault), what="Needs attention")
        text = (failed / "Migrate.md").read_text().replace("behave: fail", "behave: ok")
        (failed / "Migrate.md").write_text(text)
        assert person(vault, "retry", migrate.task_id or "").returncode == 0
        wait_status(vault.folder(Folder.DONE) / "Cleanup.md", "done", 20)
    assert "waits for" not in _dashboard(vault)


def test_an_approval_is_asked_once_the_task_is_ready_not_before(
    vault: Vault, tmp_path: Path, ledger: Path
) -> None:
    gate = tmp_path / "gate"
    needs = vault.folder(Folder.NEEDS_ACTION)
    with running_service(agent_config(vault)):
        drop(vault, tmp_path, "First.md", task("First", behave=f"gate {gate}"))
        drop(
            vault,
            tmp_path,
            "Publish.md",
            "---\ntitle: Publish\ntype: publish\nafter: First\n---\nbehave: ok\n",
        )
        wait_for(lambda: note(needs / "Publish.md").meta.get("waiting_for"), what="waiting")
        assert not (vault.folder(Folder.PENDING_APPROVAL) / "Publish.md").exists()
        gate.touch()
        held = wait_status(vault.folder(Folder.PENDING_APPROVAL) / "Publish.md", "pending_approval")
        assert "waiting_for" not in held.meta
    assert os.path.exists(vault.folder(Folder.DONE) / "First.md")


def test_add_after_and_status_show_what_a_task_waits_for(
    vault: Vault, tmp_path: Path, ledger: Path
) -> None:
    gate = tmp_path / "gate"
    first = cli(vault, "add", "Schema", "--body", f"behave: gate {gate}", "--json")
    first_id = json.loads(first.stdout)["task_id"]
    added = cli(vault, "add", "Seed data", "--after", "[[Schema]]", "--after", "Other", "--json")
    assert added.returncode == 0, added.stderr
    text = Path(json.loads(added.stdout)["path"]).read_text()
    assert 'after: ["[[Schema]]", "Other"]\n' in text
    bad = cli(vault, "add", "Odd", "--after", " ")
    assert bad.returncode != 0 and "--after:" in bad.stderr and "Traceback" not in bad.stderr
    with running_service(agent_config(vault)):
        needs = vault.folder(Folder.NEEDS_ACTION)
        wait_for(lambda: note(needs / "Seed data.md").meta.get("waiting_for"), what="waiting")
        shown = cli(vault, "status")
        assert f"(waits for Schema ({first_id}); Other: no such task yet)" in shown.stdout
        as_json = json.loads(cli(vault, "status", "--json").stdout)
        (seed,) = [t for t in as_json["active"] if t["title"] == "Seed data"]
        assert seed["waiting_for"] == f"Schema ({first_id}); Other: no such task yet"
        gate.touch()
        drop(vault, tmp_path, "Other.md", task("Other"))
        wait_status(vault.folder(Folder.DONE) / "Seed data.md", "done", 20)


def started(ledger: Path) -> list[str]:
    return [t for t, event, _ in ledger_order(ledger) if event == "start"]


def test_a_queued_task_that_comes_to_wait_is_taken_off_the_queue(
    vault: Vault, tmp_path: Path, ledger: Path
) -> None:
    """The one slot is busy; D is queued; a person adds `after:` to it: D must not run."""
    gate = tmp_path / "gate"
    needs, done = vault.folder(Folder.NEEDS_ACTION), vault.folder(Folder.DONE)
    with running_service(agent_config(vault, max_parallel=1)):
        drop(vault, tmp_path, "Busy.md", task("Busy", behave=f"gate {gate}"))
        wait_for(lambda: started(ledger), what="Busy to run")
        drop(vault, tmp_path, "D.md", task("D"))
        queued = wait_for(lambda: len(q := events(vault, "queued")) == 2 and q, what="D queued")
        d_id = queued[-1]["task_id"]
        assert d_id == note(needs / "D.md").task_id
        text = (
            (needs / "D.md")
            .read_text()
            .replace("type: claude_app\n", "type: claude_app\nafter: Nope\n")
        )
        drop(vault, tmp_path, "D.md", text)
        wait_for(lambda: note(needs / "D.md").meta.get("waiting_for"), what="D to wait")
        gate.touch()
        drop(vault, tmp_path, "E.md", task("E"))  # queued after D: it runs once D would have
        wait_status(done / "E.md", "done", 20)
        assert d_id not in started(ledger), "D ran though it waits for Nope"
        drop(vault, tmp_path, "Nope.md", task("Nope"))
        wait_status(done / "D.md", "done", 20)


def test_a_done_dependency_whose_note_was_archived_still_counts_as_done(
    vault: Vault, tmp_path: Path, ledger: Path
) -> None:
    gate = tmp_path / "gate"
    needs, done = vault.folder(Folder.NEEDS_ACTION), vault.folder(Folder.DONE)
    with running_service(agent_config(vault)):
        drop(vault, tmp_path, "A.md", task("A"))
        drop(vault, tmp_path, "B.md", task("B", behave=f"gate {gate}"))
        wait_status(done / "A.md", "done", 20)
        drop(vault, tmp_path, "D.md", task("D", after='["A", "B"]'))
        wait_for(lambda: note(needs / "D.md").meta.get("waiting_for"), what="D waits for B")
        (done / "A.md").unlink()  # a person tidies Done/
        gate.touch()
        wait_status(done / "D.md", "done", 20)


def test_a_name_means_the_note_of_that_name_now_not_last_weeks_finished_one(
    vault: Vault, tmp_path: Path, ledger: Path
) -> None:
    gate = tmp_path / "gate"
    done = vault.folder(Folder.DONE)
    with running_service(agent_config(vault)):
        drop(vault, tmp_path, "Deploy.md", task("Deploy"))
        old = wait_status(done / "Deploy.md", "done", 20)
        drop(vault, tmp_path, "Deploy.md", task("Deploy", behave=f"gate {gate}") + "this week\n")
        drop(vault, tmp_path, "Smoke.md", task("Smoke", after="Deploy"))
        new_id = wait_for(
            lambda: [e["task_id"] for e in events(vault, "queued") if e["task_id"] != old.task_id],
            what="this week's Deploy queued",
        )[0]
        smoke = wait_for(
            lambda: (
                (n := note(vault.folder(Folder.NEEDS_ACTION) / "Smoke.md")).meta.get("waiting_for")
                and n
            ),
            what="Smoke waits",
        )
        assert smoke.meta["after_ids"] == {"Deploy": new_id}
        gate.touch()
        wait_status(done / "Smoke.md", "done", 20)
    assert started(ledger)[1:] == [new_id, smoke.task_id]


def test_a_deleted_dependency_is_said_and_needs_attention_and_a_cycle_through_it_ends(
    vault: Vault, tmp_path: Path, ledger: Path
) -> None:
    needs = vault.folder(Folder.NEEDS_ACTION)
    with running_service(agent_config(vault)):
        drop(vault, tmp_path, "X  two.md", task("X  two", after="Y"))  # a double space
        drop(vault, tmp_path, "Y.md", task("Y", after='"[[X  two]]"'))
        wait_for(lambda: "cycle" in str(note(needs / "Y.md").meta.get("waiting_for")), what="cycle")
        x_id = note(needs / "X  two.md").task_id
        (needs / "X  two.md").unlink()
        said = f"X two ({x_id}): its note is gone (name another task in `after:`)"
        wait_for(lambda: note(needs / "Y.md").meta.get("waiting_for") == said, what="gone")
        wait_for(lambda: f"waits for {said}" in _dashboard(vault), what="Needs attention")
    assert not ledger.read_text()
