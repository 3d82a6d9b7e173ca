"""The web page's pure parts: markdown that cannot run anything, transcript turns, the chart,
cards from notes (hostile ones included), the guard's checks, the audit log's filters."""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ai_employee.notes.vault import Folder, Vault
from ai_employee.surfaces.web import auditlog, charts, transcript
from ai_employee.surfaces.web.render import markdown, safe_link
from ai_employee.surfaces.web.security import Guard, is_loopback, load_or_create_token
from ai_employee.surfaces.web.servicestate import read_state
from ai_employee.surfaces.web.view import COLUMNS, Filters, VaultView, card_of, money, work_files

# -- markdown ----------------------------------------------------------------------------------


def test_raw_html_in_a_note_is_text() -> None:
    html = markdown('<script>alert("x")</script>\n\n<img src=x onerror=alert(1)>')
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;" in html


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        " javascript:alert(1)",
        "java\tscript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox(1)",
        "file:///etc/passwd",
        "//evil.example/x",
    ],
)
def test_unsafe_links_are_not_links(url: str) -> None:
    assert not safe_link(url)
    html = markdown(f"[click]({url}) <{url}>")
    assert "href" not in html


@pytest.mark.parametrize(
    "url", ["https://example.com/a?b=c", "http://x", "mailto:a@b.c", "notes/x.md", "#part"]
)
def test_safe_links_stay_links(url: str) -> None:
    assert safe_link(url)
    assert 'rel="noreferrer nofollow"' in markdown(f"[a]({url})")


def test_an_image_becomes_a_link_and_nothing_is_loaded() -> None:
    html = markdown("![diagram](https://example.com/d.png)")
    assert "<img" not in html
    assert '<a href="https://example.com/d.png"' in html and "[image: diagram]" in html
    assert "<img" not in markdown("![x](javascript:alert(1))")


_HOSTILE = st.sampled_from(
    ["<script>", "</script>", "<img src=x onerror=alert(1)>", "<svg onload=x>", "javascript:",
     "[a](", ")", "![b](", "<", ">", '"', "'", "\n", " ", "`", "*", "data:text/html,"]
)  # fmt: skip


@given(st.lists(st.one_of(_HOSTILE, st.text(max_size=5)), max_size=40).map("".join))
def test_no_text_makes_a_tag_or_a_link_the_page_would_run(text: str) -> None:
    html = str(markdown(text)).lower()
    for tag in ("<script", "<img", "<iframe", "<svg", "<object", "<style", "<embed"):
        assert tag not in html
    assert 'href="javascript' not in html and 'href="data:' not in html


# -- transcript turns ----------------------------------------------------------------------------


def _out(message: dict[str, object]) -> dict[str, object]:
    return {"ts": "2026-12-02T10:00:00.000+00:00", "kind": "out", "line": json.dumps(message)}


def test_stream_json_becomes_text_tool_calls_results_and_the_result() -> None:
    records = [
        {"ts": "t", "kind": "start", "attempt": 2, "resume": True},
        _out({"type": "system", "subtype": "init", "session_id": "s-1", "model": "m"}),
        _out(
            {
                "type": "assistant",
                "message": {
                    "content": [
                        {"type": "text", "text": "I will write it."},
                        {"type": "tool_use", "name": "Write", "input": {"file_path": "a.py"}},
                    ]
                },
            }
        ),
        _out(
            {
                "type": "user",
                "message": {
                    "content": [{"type": "tool_result", "content": "written", "is_error": False}]
                },
            }
        ),
        _out({"type": "result", "subtype": "success", "result": "Done.", "total_cost_usd": 0.25}),
        {"ts": "t", "kind": "end", "outcome": "success", "exit_code": 0, "duration_s": 3.5},
    ]
    turns = [t for r in records for t in transcript.turns_of(r)]
    assert [t.kind for t in turns] == ["start", "start", "text", "tool", "result", "final", "end"]
    assert turns[0].text == "attempt 2 (resumed)"
    assert turns[3].label == "Write" and '"file_path": "a.py"' in turns[3].text
    assert turns[4].text == "written"
    assert turns[5].text == "Done." and "$0.2500" in turns[5].label
    assert turns[6].label == "succeeded · exit 0 · 3.5 s"


def test_a_failed_result_and_end_show_as_errors_with_what_comes_next() -> None:
    # Not logged in: the CLI's result says `subtype: success` beside `is_error: true`.
    line = '{"type":"result","subtype":"success","is_error":true,"result":"Not logged in"}'
    (result,) = transcript.turns_of({"kind": "out", "line": line})
    assert (result.kind, result.label, result.text) == ("error", "error", "Not logged in")
    (end,) = transcript.turns_of({"kind": "end", "outcome": "permanent", "exit_code": 1})
    assert end.kind == "error"
    assert end.label == "failed; another attempt would fail the same way · exit 1"
    (again,) = transcript.turns_of({"kind": "end", "outcome": "transient"})
    assert again.kind == "error" and again.label == "failed; worth another attempt"
    (cancelled,) = transcript.turns_of({"kind": "end", "outcome": "cancelled"})
    assert cancelled.kind == "end" and cancelled.label == "cancelled by a person"


def test_plain_output_is_shown_as_it_is_and_bad_json_too() -> None:
    assert transcript.turns_of({"kind": "out", "line": "hello"})[0].text == "hello"
    assert transcript.turns_of({"kind": "out", "line": "{not json"})[0].text == "{not json"
    assert transcript.turns_of({"kind": "out", "line": "   "}) == []
    assert transcript.turns_of({"kind": "nonsense"}) == []


def test_a_huge_turn_is_cut() -> None:
    turn = transcript.turns_of({"kind": "out", "line": "x" * 50_000})[0]
    assert len(turn.text) < 21_000 and "more characters" in turn.text


def test_read_from_takes_only_complete_lines_and_restarts_a_shorter_file(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({"kind": "out", "line": "one"}) + "\n" + '{"kind": "out", "li')
    turns, offset = transcript.read_from(path, 0)
    assert [t.text for t in turns] == ["one"]
    with path.open("a") as handle:
        handle.write('ne": "two"}\n')
    turns, offset = transcript.read_from(path, offset)
    assert [t.text for t in turns] == ["two"]
    path.write_text(json.dumps({"kind": "out", "line": "again"}) + "\n")  # a new attempt
    turns, _ = transcript.read_from(path, offset)
    assert [t.text for t in turns] == ["again"]
    assert transcript.read_from(tmp_path / "missing.jsonl", 7) == ([], 7)


# -- the chart ---------------------------------------------------------------------------------


def test_days_sum_cost_and_count_done_by_local_day(vault: Vault) -> None:
    noon = datetime(2026, 12, 2, 12, tzinfo=UTC)
    today = noon.astimezone().date()

    def finished(name: str, folder: Folder, status: str, cost: object, when: datetime) -> Path:
        return _write(
            vault,
            folder,
            name,
            f"---\ntitle: {name}\nstatus: {status}\ncost_usd: {cost}\n"
            f"completed_at: {when.isoformat()}\n---\n",
        )

    finished("a.md", Folder.DONE, "done", 0.5, noon)
    finished("b.md", Folder.DONE, "done", 0.25, noon - timedelta(days=1))
    failed = finished("c.md", Folder.FAILED, "failed", 1.0, noon)
    finished("d.md", Folder.DONE, "done", 9.0, noon - timedelta(days=40))  # outside the window
    finished("e.md", Folder.DONE, "done", "abc", noon)  # counted, its cost not
    _write(vault, Folder.NEEDS_ACTION, "f.md", "---\ntitle: f\ncost_usd: 5\n---\n")  # not finished
    view = VaultView(vault, 1 << 20)
    view.load()
    figures = charts.days(view.per_day, today, 3)
    assert [d.day for d in figures] == [today - timedelta(days=2), today - timedelta(days=1), today]
    assert [d.done for d in figures] == [0, 1, 2]
    assert figures[-1].cost_usd == pytest.approx(1.5)
    failed.unlink()
    view.refresh(failed)
    assert charts.days(view.per_day, today, 1)[0].cost_usd == pytest.approx(0.5)


def test_the_chart_draws_the_budget_and_survives_odd_figures() -> None:
    figures = [charts.Day(date(2026, 12, d), c, 1) for d, c in ((1, 0.0), (2, 2.0), (3, 1e300))]
    svg = str(charts.cost_chart(figures, 1.0))
    assert svg.startswith("<svg") and 'class="budget"' in svg and svg.count("<rect") == 3
    nan = str(charts.cost_chart([charts.Day(date(2026, 12, 1), float("nan"), 0)], float("inf")))
    assert "nan" not in nan.lower() and "inf" not in nan.lower().replace("info", "")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(0.5, 0.5), (2, 2.0), ("abc", None), (True, None), (float("nan"), None), (-1, None)],
)
def test_money_takes_only_plain_non_negative_numbers(raw: object, expected: float | None) -> None:
    assert money(raw) == expected


# -- cards from notes ----------------------------------------------------------------------------


def _write(vault: Vault, folder: Folder, name: str, text: str | bytes) -> Path:
    path = vault.folder(folder) / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_cards_from_plain_and_hostile_notes(vault: Vault, tmp_path: Path) -> None:
    good = _write(
        vault,
        Folder.DONE,
        "Good.md",
        "---\ntitle: Good\ntype: claude_app\npriority: high\ntask_id: abc12345\nstatus: done\n"
        "cost_usd: abc\nattempts: 2\n---\nbody\n",
    )
    broken = _write(vault, Folder.NEEDS_ACTION, "Broken.md", "---\ntitle: [unclosed\n---\n")
    binary = _write(vault, Folder.NEEDS_ACTION, "Binary.md", b"\x00\xff\xfe" * 100)
    (tmp_path / "outside.md").write_text("---\ntitle: secret\n---\n")
    link = vault.folder(Folder.NEEDS_ACTION) / "Link.md"
    link.symlink_to(tmp_path / "outside.md")
    held = _write(
        vault,
        Folder.NEEDS_ACTION,
        "Copy.md",
        "---\ntitle: Copy\nstatus: new\nerror: 'held as a copy: of x'\n---\n",
    )
    card = card_of(vault, good, 1 << 20)
    assert card is not None
    assert (card.column, card.task_id, card.priority, card.cost_usd) == (
        "done",
        "abc12345",
        "high",
        None,
    )
    for path in (broken, binary, link):
        refused = card_of(vault, path, 1 << 20)
        assert refused is not None and refused.column == "refused" and refused.error
        assert "secret" not in refused.title
    held_card = card_of(vault, held, 1 << 20)
    assert held_card is not None and held_card.column == "refused"
    assert card_of(vault, vault.folder(Folder.DONE) / "gone.md", 1 << 20) is None
    assert card_of(vault, vault.folder(Folder.PLANS) / "x.md", 1 << 20) is None


def test_a_task_id_that_is_not_a_plain_word_is_not_used_as_one(vault: Vault) -> None:
    path = _write(vault, Folder.DONE, "T.md", "---\ntitle: T\ntask_id: ../../etc\n---\n")
    card = card_of(vault, path, 1 << 20)
    assert card is not None and card.task_id is None and card.ref == "Done/T.md"


def test_the_board_filters_counts_and_caps_columns(vault: Vault) -> None:
    for i in range(7):
        prio = "high" if i % 2 else "low"
        _write(
            vault,
            Folder.DONE,
            f"T{i}.md",
            f"---\ntitle: Task {i}\ntype: t{i % 3}\npriority: {prio}\ntask_id: id{i}\n"
            "status: done\n---\n",
        )
        os.utime(vault.folder(Folder.DONE) / f"T{i}.md", (1000 + i, 1000 + i))
    view = VaultView(vault, 1 << 20)
    assert view.load() == 7
    board = view.board(Filters(), per_column=3)
    done = next(c for c in board.columns if c.column.key == "done")
    assert done.count == 7 and done.more == 4
    assert [c.title for c in done.cards] == ["Task 6", "Task 5", "Task 4"]  # newest first
    assert board.types == ["t0", "t1", "t2"]
    only = view.board(Filters(task_type="t1", priority="high", text="TASK"))
    assert [c.title for c in only.columns[4].cards] == ["Task 1"]
    assert view.find("id3") is not None and view.find("Done/T3.md") is not None
    assert view.find("../../etc/passwd") is None
    (vault.folder(Folder.DONE) / "T3.md").unlink()
    assert view.refresh(vault.folder(Folder.DONE) / "T3.md") is None
    assert view.find("id3") is None


_EDITS = st.lists(
    st.tuples(
        st.integers(0, 5),  # which note
        st.sampled_from([*Folder.__members__.values()][:8]),
        st.sampled_from(["new", "planned", "executing", "pending_approval", "done", "failed",
                         "cancelled", "rejected", "BROKEN", "GONE"]),
        st.sampled_from(["a", "b", ""]),  # type
        st.integers(0, 3),  # cost in quarters, completed day offset
    ),
    max_size=25,
)  # fmt: skip


@given(_EDITS)
def test_the_kept_indexes_always_equal_a_fresh_count(
    edits: list[tuple[int, Folder, str, str, int]],
) -> None:
    """Whatever notes come, change, move and go, the board drawn from the kept indexes is the
    board counted afresh from the cards."""
    import tempfile

    from ai_employee.notes.vault import init_vault

    with tempfile.TemporaryDirectory() as tmp:
        vault = Vault(Path(tmp) / "v")
        init_vault(vault.root)
        view = VaultView(vault, 1 << 20)
        where: dict[int, Path] = {}
        for i, (n, folder, status, kind, k) in enumerate(edits):
            if n in where:
                where[n].unlink(missing_ok=True)
                view.refresh(where.pop(n))
            if status == "GONE":
                continue
            path = vault.folder(folder) / f"n{n}.md"
            text = (
                "---\ntitle: [broken\n---\n"
                if status == "BROKEN"
                else f"---\ntitle: t{n}\ntask_id: id{n}\nstatus: {status}\ntype: {kind}\n"
                f"cost_usd: {k / 4}\ncompleted_at: 2026-12-0{k + 1}T10:00:00Z\n---\n"
            )
            if folder.value in ("Needs_Action", "Pending_Approval", "Approved", "Rejected",
                                "Done", "Failed"):  # fmt: skip
                path.write_text(text)
                os.utime(path, (1000 + i, 1000 + i))
                where[n] = path
            view.refresh(path)
        board = view.board(Filters())
        cards = list(view.cards.values())
        for cv in board.columns:
            mine = [c for c in cards if c.column == cv.column.key]
            assert cv.count == len(mine)
            assert cv.cards == sorted(mine, key=lambda c: (c.changed, c.rel), reverse=True)[:50]
        assert board.needs_you == sum(c.needs_you for c in cards)
        assert board.types == sorted({c.task_type for c in cards if c.task_type})
        for day, total in view.per_day.items():
            done = [c for c in cards if c.completed_day == day and c.folder in ("Done", "Failed")]
            assert total.done == sum(c.status == "done" for c in done)
            assert total.cost_micro == sum(round((c.cost_usd or 0) * 1e6) for c in done)
        assert {c.key for c in COLUMNS} == {cv.column.key for cv in board.columns}


def test_filters_from_a_query_drop_what_is_not_a_choice() -> None:
    filters = Filters.from_query({"type": " claude_app ", "priority": "urgent", "q": "x" * 500})
    assert filters.task_type == "claude_app" and filters.priority == "" and len(filters.text) == 200


def test_work_files_never_follow_a_symlink_out(tmp_path: Path) -> None:
    work = tmp_path / "work"
    (work / "src").mkdir(parents=True)
    (work / "src" / "main.py").write_text("print(1)\n")
    (work / ".git").mkdir()
    (work / ".git" / "HEAD").write_text("ref\n")
    secret = tmp_path / "secret"
    (secret / "deep").mkdir(parents=True)
    (secret / "deep" / "key").write_text("k")
    (work / "escape").symlink_to(secret)
    files, more = work_files(work)
    names = [n for n, _ in files]
    assert names == ["escape", "src/main.py"] and not more
    assert work_files(tmp_path / "none") == ([], False)


# -- the guard -----------------------------------------------------------------------------------


def test_loopback_binding_accepts_local_names_only() -> None:
    guard = Guard("127.0.0.1", 8787, None)
    for host in ("127.0.0.1:8787", "localhost:8787", "[::1]:8787", "localhost"):
        assert guard.allowed_host(host), host
    for host in ("evil.example:8787", "", "192.168.1.4:8787", "127.0.0.1.evil.example"):
        assert not guard.allowed_host(host), host
    assert guard.token_ok(None)


def test_a_token_guards_other_addresses() -> None:
    guard = Guard("0.0.0.0", 8787, "t" * 43)
    assert guard.allowed_host("192.168.1.4:8787")
    assert guard.token_ok("t" * 43) and not guard.token_ok("t" * 42) and not guard.token_ok(None)
    assert Guard("10.0.0.2", 1, "t").allowed_host("10.0.0.2:1")
    assert not Guard("10.0.0.2", 1, "t").allowed_host("evil:1")
    assert is_loopback("::1") and not is_loopback("0.0.0.0")


def test_csrf_and_origin() -> None:
    guard = Guard("127.0.0.1", 8787, None)
    assert guard.csrf_ok(guard.csrf_token())
    assert not guard.csrf_ok("0" * 64) and not guard.csrf_ok(None)
    assert not Guard("127.0.0.1", 8787, None).csrf_ok(guard.csrf_token())  # another process
    host = "127.0.0.1:8787"
    assert Guard.same_origin("http://127.0.0.1:8787", None, host)
    assert Guard.same_origin(None, "http://127.0.0.1:8787/task/x", host)
    assert not Guard.same_origin("http://evil.example", None, host)
    assert not Guard.same_origin("null", None, host)
    assert not Guard.same_origin(None, None, host)


def test_the_token_file_is_private_and_kept(vault: Vault) -> None:
    token, new = load_or_create_token(vault.machinery, vault.tmp)
    path = vault.machinery / "dashboard-token"
    assert new and len(token) >= 32 and (path.stat().st_mode & 0o777) == 0o600
    path.chmod(0o644)
    again, new_again = load_or_create_token(vault.machinery, vault.tmp)
    assert again == token and not new_again and (path.stat().st_mode & 0o777) == 0o600


# -- the audit log and the service's state ---------------------------------------------------------


def test_log_filters_by_task_action_and_level(vault: Vault) -> None:
    entries = [
        {"timestamp": "2026-12-01T10:00:00Z", "level": "info", "event": "a", "action_type": "run",
         "task_id": "t1"},
        {"timestamp": "2026-12-01T10:01:00Z", "level": "warning", "event": "b",
         "action_type": "run", "task_id": "t2"},
        {"timestamp": "2026-12-02T09:00:00Z", "level": "error", "event": "c",
         "action_type": "plan", "task_id": "t1"},
    ]  # fmt: skip
    (vault.logs / "2026-12-01.jsonl").write_text(
        "".join(json.dumps(e) + "\n" for e in entries[:2]) + "not json\n"
    )
    (vault.logs / "2026-12-02.jsonl").write_text(json.dumps(entries[2]) + "\n")
    every = auditlog.newest(vault.logs, auditlog.LogFilters())
    assert [line.entry["event"] for line in every] == ["c", "b", "a"]
    assert [x.entry["event"] for x in auditlog.newest(vault.logs, auditlog.LogFilters("t1"))] == [
        "c",
        "a",
    ]
    runs = auditlog.newest(vault.logs, auditlog.LogFilters(action="run", level="warning"))
    assert [x.entry["event"] for x in runs] == ["b"]
    assert auditlog.actions(vault.logs) == ["plan", "run"]
    assert auditlog.newest(vault.logs, auditlog.LogFilters(), limit=1)[0].entry["event"] == "c"


def test_service_state_without_and_with_a_lock_holder(vault: Vault) -> None:
    import fcntl

    assert not read_state(vault, vault.root).running
    vault.lock_file.write_text("pid 4242 since 2026-12-02T10:00:00Z\n")
    assert not read_state(vault, vault.root).running  # a file, but nobody holds it
    fd = os.open(vault.lock_file, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        state = read_state(vault, vault.root)
        assert state.running and state.pid == 4242 and state.since is not None
        assert "pid 4242" in state.words
    finally:
        os.close(fd)


def test_a_line_longer_than_a_whole_read_is_left_out_and_the_rest_follows(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    huge = json.dumps({"kind": "out", "line": "x" * (transcript.MAX_READ_BYTES + 10)})
    path.write_text(huge + "\n" + json.dumps({"kind": "out", "line": "after"}) + "\n")
    offset, seen = 0, []
    for _ in range(4):
        turns, offset = transcript.read_from(path, offset)
        seen += turns
    assert "left out" in seen[0].text and seen[-1].text == "after"


def test_a_rounds_commit_and_the_tasks_changes_are_turns() -> None:
    record = {"kind": "commit", "round": 2, "sha": "0123456789abcdef", "agent_commits": 1}
    (commit,) = transcript.turns_of(record)
    assert (commit.kind, commit.label) == ("commit", "round 2 committed")
    assert commit.text == "0123456789ab; 1 commit(s) by the agent kept"
    (nothing,) = transcript.turns_of({"kind": "commit", "round": 1, "sha": None})
    assert nothing.text == "nothing changed" and nothing.label == "round 1"
    big = {"kind": "commit", "round": 1, "sha": "ab", "left_out": ["<big>.bin"]}
    assert "left out (too big): <big>.bin" in transcript.turns_of(big)[0].text
    changes = {"kind": "changes", "base": "fedcba9876543210", "summary": "3 files, +40 -2"}
    assert transcript.turns_of(changes)[0].text == "3 files, +40 -2 since fedcba987654"
