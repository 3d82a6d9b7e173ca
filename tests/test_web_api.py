"""The web page's HTTP API through Starlette's test client, on a real vault (real files, the
real watcher behind the view): pages, acts, the new-task form, and the guard."""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from ai_employee.base.config import Config
from ai_employee.notes.vault import Folder, Vault
from ai_employee.surfaces.web.app import create_app
from ai_employee.surfaces.web.security import Guard

from .helpers import wait_for
from .service_harness import note

BASE = "http://127.0.0.1:8787"
ORIGIN = {"origin": BASE}


def write(vault: Vault, folder: Folder, name: str, text: str) -> Path:
    path = vault.folder(folder) / name
    path.write_text(text, encoding="utf-8")
    return path


def task_text(title: str, task_id: str, status: str, **keys: Any) -> str:
    extra = "".join(f"{k}: {v}\n" for k, v in keys.items())
    return f"---\ntitle: {title}\ntask_id: {task_id}\nstatus: {status}\n{extra}---\nDo it.\n"


@pytest.fixture
def client(config: Config) -> Iterator[TestClient]:
    app = create_app(config, Guard("127.0.0.1", 8787, None))
    with TestClient(app, base_url=BASE, follow_redirects=False) as test_client:
        yield test_client


def csrf(client: TestClient) -> str:
    match = re.search(r'name="csrf-token" content="([0-9a-f]+)"', client.get("/").text)
    assert match
    return match.group(1)


def board(client: TestClient, query: str = "") -> dict[str, Any]:
    response = client.get(f"/api/board{query}")
    assert response.status_code == 200
    return dict(response.json())


def in_column(client: TestClient, column: str, query: str = "") -> list[str]:
    return [c["title"] for c in board(client, query)["columns"][column]["cards"]]


def test_the_board_shows_each_status_in_its_column(vault: Vault, client: TestClient) -> None:
    write(vault, Folder.NEEDS_ACTION, "A.md", "---\ntitle: A new one\n---\n")
    write(vault, Folder.NEEDS_ACTION, "B.md", task_text("B", "bbbbbbbb", "planned"))
    write(vault, Folder.NEEDS_ACTION, "C.md", task_text("C", "cccccccc", "executing"))
    write(vault, Folder.PENDING_APPROVAL, "D.md", task_text("D", "dddddddd", "pending_approval"))
    write(vault, Folder.DONE, "E.md", task_text("E", "eeeeeeee", "done", cost_usd=0.5))
    write(vault, Folder.FAILED, "F.md", task_text("F", "ffffffff", "failed", error="boom"))
    write(vault, Folder.DONE, "G.md", task_text("G", "gggggggg", "cancelled"))
    write(vault, Folder.REJECTED, "H.md", task_text("H", "hhhhhhhh", "rejected"))
    write(vault, Folder.NEEDS_ACTION, "I.md", "---\ntitle: [broken\n---\n")
    expected = {
        "new": ["A new one"],
        "planned": ["B"],
        "running": ["C"],
        "waiting": ["D"],
        "done": ["E"],
        "failed": ["F"],
        "cancelled": ["G"],
    }

    def settled() -> bool:
        data = board(client)
        return data["total"] == 9 and all(
            [c["title"] for c in data["columns"][k]["cards"]] == v for k, v in expected.items()
        )

    wait_for(settled, what="every note in its column")
    data = board(client)
    assert sorted(c["title"] for c in data["columns"]["refused"]["cards"]) == ["H", "I"]
    assert data["needs_you"] == 3  # waiting, failed, the broken note (not the rejected one)
    page = client.get("/").text
    assert "3 need you" in page and "<title>(3) ai-employee</title>" in page


def test_the_board_filters_by_type_priority_and_text(vault: Vault, client: TestClient) -> None:
    write(vault, Folder.DONE, "A.md", task_text("Alpha", "a1", "done", type="web", priority="high"))
    write(vault, Folder.DONE, "B.md", task_text("Beta", "b1", "done", type="cli", priority="high"))
    write(vault, Folder.DONE, "C.md", task_text("Gamma", "c1", "done", type="web", priority="low"))
    wait_for(lambda: board(client)["total"] == 3, what="three cards")
    assert sorted(in_column(client, "done", "?type=web")) == ["Alpha", "Gamma"]
    assert in_column(client, "done", "?type=web&priority=high") == ["Alpha"]
    assert in_column(client, "done", "?q=gAmM") == ["Gamma"]
    html = client.get("/?type=cli").text
    assert "Beta" in html and "Alpha" not in html and '<option value="cli" selected>' in html


def test_a_hostile_note_is_shown_as_text(vault: Vault, client: TestClient) -> None:
    write(
        vault,
        Folder.NEEDS_ACTION,
        "X.md",
        "---\ntitle: <script>alert(1)</script>\ntask_id: xxxxxxxx\nstatus: planned\n"
        "cost_usd: abc\nplan: '[[../../../../etc/passwd]]'\n---\n"
        "<script>alert(2)</script>\n\n[click](javascript:alert(3))\n\n"
        "<img src=x onerror=alert(4)>\n",
    )
    wait_for(lambda: board(client)["total"] == 1, what="the card")
    for url in ("/", "/board", "/task/xxxxxxxx"):
        response = client.get(url)
        assert response.status_code == 200, url
        assert "<script>alert" not in response.text and "<img" not in response.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text
    page = client.get("/task/xxxxxxxx").text
    assert 'href="javascript' not in page and "[click](javascript:alert(3))" in page
    assert "root:" not in page  # the plan link names no file outside Plans/


def test_the_task_page_shows_note_plan_result_figures_and_files(
    vault: Vault, client: TestClient, config: Config
) -> None:
    write(
        vault,
        Folder.PLANS,
        "PLAN_Build (bbbbbbbb).md",
        "---\ntask_id: bbbbbbbb\n---\n## Steps\n1. Write main.py\n",
    )
    write(
        vault,
        Folder.DONE,
        "Build.md",
        "---\ntitle: Build\ntask_id: bbbbbbbb\nstatus: done\napp: demo\nlanguage: python\n"
        "plan: '[[PLAN_Build (bbbbbbbb)]]'\ncost_usd: 0.125\nduration_s: 12.5\nattempts: 1\n---\n"
        "Make **it**.\n\n## Result\n\nBuilt `main.py`.\n",
    )  # fmt: skip
    work = config.apps_dir / "python" / "demo"
    work.mkdir(parents=True)
    (work / "main.py").write_text("print('hi')\n")
    (vault.transcripts / "bbbbbbbb.jsonl").write_text(
        '{"ts": "2026-12-02T10:00:00.000+00:00", "kind": "out", "line": "hello from the agent"}\n'
    )
    wait_for(lambda: client.get("/task/bbbbbbbb").status_code == 200, what="the task page")
    page = client.get("/task/bbbbbbbb").text
    assert (
        "<strong>it</strong>" in page
        and "Write main.py" in page
        and "task_id: bbbbbbbb" not in page
    )
    assert "Built <code>main.py</code>" in page and "$0.12" in page and "12.5 s" in page
    assert "<code>main.py</code> <span" in page and str(work) in page
    assert "hello from the agent" in page
    assert client.get("/task/Done/Build.md").status_code == 200  # by path too


@pytest.mark.parametrize(
    "ref",
    ["nope", "..%2F..%2Fetc%2Fpasswd", "Plans/x.md", "%2Fetc%2Fpasswd", "Done/../../etc/passwd"],
)
def test_a_task_the_board_does_not_know_is_404(client: TestClient, ref: str) -> None:
    response = client.get(f"/task/{ref}")
    assert response.status_code == 404 and "root:" not in response.text


def test_the_new_task_form_writes_a_note_into_needs_action(
    vault: Vault, client: TestClient
) -> None:
    token = csrf(client)
    form = {
        "csrf": token,
        "title": "Make a CLI",
        "type": "claude_app",
        "priority": "high",
        "app": "greeter",
        "language": "python",
        "body": "Print hello.\r\nThen exit.",
    }
    response = client.post("/new", data=form, headers=ORIGIN)
    assert response.status_code == 303
    task_id = response.headers["location"].removeprefix("/task/")
    path = vault.folder(Folder.NEEDS_ACTION) / "Make a CLI.md"
    written = note(path)
    assert written.task_id == task_id and written.meta["type"] == "claude_app"
    assert written.meta["priority"] == "high" and written.meta["app"] == "greeter"
    assert written.body.strip() == "Print hello.\nThen exit."
    wait_for(lambda: client.get(f"/task/{task_id}").status_code == 200, what="its page")
    assert list(vault.tmp.iterdir()) == []


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("title", "   ", "a title is needed"),
        ("app", "../../etc", "not a plain folder name"),
        ("priority", "urgent", "not one of high, normal, low"),
        ("title", "x" * 201, "over 200 characters"),
    ],
)
def test_bad_input_on_the_form_is_one_error_and_nothing_is_written(
    vault: Vault, client: TestClient, field: str, value: str, words: str
) -> None:
    form = {"csrf": csrf(client), "title": "Kept title", "body": "kept body", field: value}
    response = client.post("/new", data=form, headers=ORIGIN)
    assert response.status_code == 400 and words in response.text
    assert "kept body" in response.text  # what was typed is still there
    assert list(vault.notes_in(Folder.NEEDS_ACTION)) == []


def act(client: TestClient, action: str, ref: str, **extra: str) -> Any:
    """An act as the page posts it (Cancel and Reject from their confirmation page)."""
    data = {"csrf": csrf(client), "ref": ref, "back": "/", "confirmed": "1"} | extra
    return client.post(f"/act/{action}", data=data, headers=ORIGIN)


@pytest.mark.parametrize("action", ["cancel", "reject"])
def test_cancel_and_reject_ask_once_more_and_change_nothing_until_confirmed(
    vault: Vault, client: TestClient, action: str
) -> None:
    path = write(
        vault, Folder.PENDING_APPROVAL, "P.md", task_text("P", "pppppppp", "pending_approval")
    )
    before = path.read_bytes()
    wait_for(lambda: board(client)["total"] == 1, what="the card")
    asked = act(client, action, "pppppppp", confirmed="", back="/task/pppppppp")
    assert asked.status_code == 200 and path.read_bytes() == before
    assert f'id="confirm" autofocus>Yes, {action} it</button>' in asked.text
    assert '<input type="hidden" name="confirmed" value="1">' in asked.text
    assert 'id="go-back" href="/task/pppppppp"' in asked.text
    done = act(client, action, "pppppppp", back="/task/pppppppp")
    assert done.status_code == 303 and "notice=" in done.headers["location"]
    assert not path.exists()


def test_the_task_page_shows_the_notice_of_an_act(vault: Vault, client: TestClient) -> None:
    write(vault, Folder.PENDING_APPROVAL, "P.md", task_text("P", "pppppppp", "pending_approval"))
    wait_for(lambda: board(client)["total"] == 1, what="the card")
    done = act(client, "approve", "pppppppp", back="/task/pppppppp")
    page = client.get(done.headers["location"])
    assert (
        '<p class="flash notice" role="status">pppppppp: pending_approval -&gt; approved</p>'
        in (page.text)
    )


def test_approve_reject_retry_and_cancel_are_the_cli_s_edits(
    vault: Vault, client: TestClient
) -> None:
    write(vault, Folder.PENDING_APPROVAL, "P.md", task_text("P", "pppppppp", "pending_approval"))
    write(vault, Folder.PENDING_APPROVAL, "Q.md", task_text("Q", "qqqqqqqq", "pending_approval"))
    write(vault, Folder.FAILED, "F.md", task_text("F", "ffffffff", "failed", attempts=3, error="x"))
    write(vault, Folder.NEEDS_ACTION, "N.md", task_text("N", "nnnnnnnn", "planned"))
    wait_for(lambda: board(client)["total"] == 4, what="four cards")

    response = act(client, "approve", "pppppppp")
    assert (
        response.status_code == 303
        and "pending_approval+-%3E+approved" in response.headers["location"]
    )
    approved = note(vault.folder(Folder.NEEDS_ACTION) / "P.md")
    assert approved.meta["status"] == "approved" and approved.meta["approved_by"].endswith("(web)")

    act(client, "reject", "qqqqqqqq")
    assert note(vault.folder(Folder.REJECTED) / "Q.md").meta["status"] == "rejected"

    act(client, "retry", "ffffffff")
    retried = note(vault.folder(Folder.NEEDS_ACTION) / "F.md")
    assert retried.meta["status"] == "planned" and retried.attempts == 0

    act(client, "cancel", "nnnnnnnn")
    assert note(vault.folder(Folder.DONE) / "N.md").meta["status"] == "cancelled"
    wait_for(lambda: in_column(client, "cancelled") == ["N"], what="the board to follow")


def test_an_act_the_lifecycle_refuses_is_an_error_and_changes_nothing(
    vault: Vault, client: TestClient
) -> None:
    path = write(vault, Folder.DONE, "D.md", task_text("D", "dddddddd", "done"))
    before = path.read_bytes()
    wait_for(lambda: board(client)["total"] == 1, what="the card")
    response = act(client, "approve", "dddddddd", back="/task/dddddddd")
    location = response.headers["location"]
    assert location.startswith("/task/dddddddd?error=") and "cannot+go+from+done" in location
    assert path.read_bytes() == before
    assert act(client, "approve", "nothing-here").headers["location"].startswith("/?error=")
    assert act(client, "explode", "dddddddd").status_code == 404
    assert act(client, "cancel", "dddddddd", back="//evil.example/").headers["location"][0] == "/"
    for sneaky in ("/\t/evil.example/", "/\n/evil.example/", "/ /evil.example/"):
        assert (
            act(client, "approve", "dddddddd", back=sneaky)
            .headers["location"]
            .startswith("/?error=")
        ), sneaky
    assert (
        not act(client, "cancel", "dddddddd", back="//evil.example/")
        .headers["location"]
        .startswith("//")
    )


def test_writes_need_the_page_s_origin_and_its_csrf_token(vault: Vault, client: TestClient) -> None:
    path = write(
        vault, Folder.PENDING_APPROVAL, "P.md", task_text("P", "pppppppp", "pending_approval")
    )
    wait_for(lambda: board(client)["total"] == 1, what="the card")
    token = csrf(client)
    data = {"csrf": token, "ref": "pppppppp"}
    assert client.post("/act/approve", data=data).status_code == 403  # no Origin, no Referer
    evil = {"origin": "http://evil.example"}
    assert client.post("/act/approve", data=data, headers=evil).status_code == 403
    wrong = {"csrf": "0" * 64, "ref": "pppppppp"}
    assert client.post("/act/approve", data=wrong, headers=ORIGIN).status_code == 403
    assert client.post("/new", data={"title": "x"}, headers=ORIGIN).status_code == 403
    assert path.exists() and note(path).meta["status"] == "pending_approval"
    referer = {"referer": f"{BASE}/task/pppppppp"}
    assert client.post("/act/approve", data=data, headers=referer).status_code == 303


def test_a_foreign_host_name_is_refused(client: TestClient) -> None:
    assert client.get("/", headers={"host": "evil.example:8787"}).status_code == 421
    assert client.get("/", headers={"host": "localhost:8787"}).status_code == 200


def test_off_loopback_every_request_needs_the_token(config: Config) -> None:
    token = "s3cr3t-" + "x" * 40
    app = create_app(config, Guard("0.0.0.0", 8787, token))
    with TestClient(app, base_url="http://192.168.7.7:8787", follow_redirects=False) as c:
        for url in ("/", "/api/board", "/events", "/static/app.js", "/task/x"):
            assert c.get(url).status_code == 401, url
        assert c.get("/", headers={"authorization": f"Bearer {token}"}).status_code == 200
        assert c.get("/?token=wrong").status_code == 401
        login = c.get(f"/?type=web&token={token}")
        assert login.status_code == 303 and login.headers["location"] == "/?type=web"
        assert "httponly" in login.headers["set-cookie"].lower()
        assert c.get("/api/board").status_code == 200  # the cookie from now on


def test_the_log_page_filters(vault: Vault, client: TestClient) -> None:
    (vault.logs / "2026-12-02.jsonl").write_text(
        '{"timestamp": "2026-12-02T10:00:00Z", "level": "info", "event": "run started", '
        '"action_type": "run", "task_id": "t1"}\n'
        '{"timestamp": "2026-12-02T10:01:00Z", "level": "error", "event": "<b>run failed</b>", '
        '"action_type": "run", "task_id": "t2"}\n'
    )

    def entries(query: str = "") -> str:
        page = client.get(f"/log{query}").text
        return page[page.index('<ol class="log"') :]

    assert "run started" in entries() and "&lt;b&gt;run failed&lt;/b&gt;" in entries()
    assert "run started" in entries("?task=t1") and "run failed" not in entries("?task=t1")
    assert "run failed" in entries("?level=error") and "run started" not in entries("?level=error")
    assert "run failed" in entries("?action=run&level=warning")


def test_status_says_whether_the_service_runs(client: TestClient) -> None:
    data = client.get("/status").json()
    assert data["running"] is False and data["words"] == "service not running"


def test_static_files_are_ours_and_nothing_is_loaded_from_elsewhere(client: TestClient) -> None:
    page = client.get("/").text
    for url in re.findall(r'(?:src|href)="([^"#]+)"', page):
        assert url.startswith("/"), url
    assert "EventSource" in client.get("/static/app.js").text
    assert client.get("/static/../app.py").status_code == 404


def test_odd_values_and_files_in_the_vault_never_break_a_page(
    vault: Vault, client: TestClient
) -> None:
    """From a review: each of these once made a page 500, hung the server or lost a card."""
    write(vault, Folder.DONE, "Y1.md", task_text("Year one", "y1", "done",
          completed_at="0001-01-01T00:00:00+14:00"))  # fmt: skip
    write(vault, Folder.DONE, "Big.md", task_text("Big", "big1", "done", cost_usd="1.0e+308",
          completed_at="2026-12-01T10:00:00Z"))  # fmt: skip
    write(vault, Folder.DONE, "Nul.md", task_text("Nul", "nul1", "done", plan='"a\\0b"'))
    (
        vault.folder(Folder.NEEDS_ACTION)
        / "\udcff.md".encode("utf-8", "surrogateescape").decode("utf-8", "surrogateescape")
    ).write_bytes(b"---\ntitle: x\n---\n")
    (vault.logs / "2025-01-01.jsonl").write_text(
        '{"timestamp": "0001-01-01T00:00:00+14:00", "event": "x"}\n'
    )
    os.mkfifo(vault.logs / "2099-01-01.jsonl")  # the newest day: a FIFO must not be read
    os.mkfifo(vault.transcripts / "nul1.jsonl")
    outside = vault.root.parent / "outside.jsonl"
    outside.write_text('{"kind": "out", "line": "OUTSIDE"}\n')
    (vault.transcripts / "big1.jsonl").symlink_to(outside)
    wait_for(lambda: board(client)["total"] == 4, what="four cards")
    for url in ("/", "/board", "/api/board", "/log", "/task/y1", "/task/big1", "/task/nul1"):
        response = client.get(url)
        assert response.status_code == 200, url
    assert "OUTSIDE" not in client.get("/task/big1").text
    cards = {c["title"]: c for c in board(client)["columns"]["done"]["cards"]}
    assert cards["Big"]["cost_usd"] is None and "Year one" in cards
    refused = board(client)["columns"]["refused"]["cards"]
    assert [c["error"] for c in refused] == ["its file name is not UTF-8; rename it"]


def test_a_token_or_csrf_value_that_is_not_ascii_is_refused_not_an_error(config: Config) -> None:
    app = create_app(config, Guard("0.0.0.0", 8787, "t" * 43))
    with TestClient(app, base_url="http://10.0.0.9:8787", follow_redirects=False) as c:
        assert c.get("/?token=%C3%A9").status_code == 401
        assert c.get("/", headers={"authorization": b"Bearer \xc3\xa9"}).status_code == 401
        login = c.get("//evil.example/?token=" + "t" * 43)
        assert login.status_code == 303 and not login.headers["location"].startswith("//")
        ok = {"authorization": "Bearer " + "t" * 43, "origin": "http://10.0.0.9:8787"}
        assert c.post("/act/cancel", data={"csrf": "é", "ref": "x"}, headers=ok).status_code == 403


def test_approving_a_request_for_a_tool_on_the_page_grants_exactly_that_rule(
    vault: Vault, client: TestClient
) -> None:
    asked = task_text(
        "Asks",
        "aaaaaaaa",
        "pending_approval",
        plan='"[[PLAN_Asks (aaaaaaaa)]]"',
        requested_tools='["Bash(npm run build -- --mode=prod)"]',
        error='"claude asked for Bash(npm run build -- --mode=prod)"',
    )
    write(vault, Folder.PENDING_APPROVAL, "Asks.md", asked)
    wait_for(lambda: board(client)["total"] == 1, what="the card")
    page = client.get("/task/aaaaaaaa").text
    assert "claude asked for Bash(npm run build -- --mode=prod)" in page
    act(client, "approve", "aaaaaaaa")
    granted = note(vault.folder(Folder.NEEDS_ACTION) / "Asks.md")
    assert granted.meta["status"] == "planned"
    assert granted.meta["granted_tools"] == ["Bash(npm run build -- --mode=prod)"]
    assert "requested_tools" not in granted.meta and "error" not in granted.meta


def test_the_icon_is_there_where_a_browser_asks(client: TestClient) -> None:
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/svg+xml"
    assert icon.content.startswith(b"<svg")
    assert client.get("/static/favicon.svg").content == icon.content
    assert '<link rel="icon" href="/static/favicon.svg"' in client.get("/").text


def test_a_refused_note_shows_its_text_and_its_real_age(vault: Vault, client: TestClient) -> None:
    path = write(vault, Folder.NEEDS_ACTION, "Broken.md", "---\ntitle: [unclosed\n---\nThe text.\n")
    old = time.time() - 3 * 3600
    os.utime(path, (old, old))
    wait_for(lambda: in_column(client, "refused") == ["Broken"], what="the refused card")
    page = client.get("/").text
    card = page.split('data-ref="Needs_Action/Broken.md"', 1)[1].split("</article>", 1)[0]
    assert '<span class="age" title="last change">3h</span>' in card
    detail = client.get("/task/Needs_Action/Broken.md").text
    assert "The service will not touch this note" in detail
    assert '<pre class="raw" id="raw-note">---\ntitle: [unclosed\n---\nThe text.\n</pre>' in detail
    binary = write(vault, Folder.NEEDS_ACTION, "Bin.md", "")
    binary.write_bytes(b"\xff\xfe\x00\x01<script>x</script>")
    wait_for(lambda: "Bin" in in_column(client, "refused"), what="the binary card")
    shown = client.get("/task/Needs_Action/Bin.md").text
    assert "&lt;script&gt;x&lt;/script&gt;" in shown and "<script>x" not in shown


def test_a_running_card_says_how_long_its_run_has_run(vault: Vault, client: TestClient) -> None:
    started = (datetime.now(UTC) - timedelta(minutes=7)).strftime("%Y-%m-%dT%H:%M:%SZ")
    write(
        vault,
        Folder.NEEDS_ACTION,
        "R.md",
        task_text("R", "rrrrrrrr", "executing", started_at=started, attempts=1),
    )
    wait_for(lambda: in_column(client, "running") == ["R"], what="the running card")
    card = client.get("/").text.split('data-ref="rrrrrrrr"', 1)[1].split("</article>", 1)[0]
    since = int(datetime.strptime(started, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp())
    assert (
        f'<span class="age" title="how long its run has run" data-started="{since}" '
        'data-words="running {}">running 7m</span>'
    ) in card  # the page counts on from data-started
    assert (
        f'<dd id="duration" data-started="{since}" data-words="{{}} so far">7m so far</dd>'
    ) in client.get("/task/rrrrrrrr").text


def test_the_badge_links_to_the_first_column_that_needs_a_person(
    vault: Vault, client: TestClient
) -> None:
    page = client.get("/").text
    assert '<a id="badge" class="badge quiet" href="/#needs-you"' in page
    assert 'data-column="waiting" id="needs-you"' in page  # nothing waits: the approvals
    write(vault, Folder.FAILED, "F.md", task_text("F", "ffffffff", "failed", error="x"))
    wait_for(lambda: in_column(client, "failed") == ["F"], what="the failed card")
    page = client.get("/").text
    assert 'data-column="failed" id="needs-you"' in page
    assert page.count('id="needs-you"') == 1


def test_work_under_review_offers_accept_and_reject_and_accept_is_done(
    vault: Vault, client: TestClient
) -> None:
    write(vault, Folder.PENDING_APPROVAL, "R.md", task_text("R", "rrrrrrrr", "in_review"))
    wait_for(lambda: in_column(client, "waiting") == ["R"], what="the card waiting for you")
    card = client.get("/").text.split('data-ref="rrrrrrrr"', 1)[1].split("</article>", 1)[0]
    assert 'data-act="accept"' in card and 'data-act="reject"' in card
    assert 'data-act="approve"' not in card, "work under review is accepted, not approved"
    assert board(client)["needs_you"] == 1
    done = act(client, "accept", "rrrrrrrr")
    assert done.status_code == 303 and "in_review+-%3E+done" in done.headers["location"]
    assert note(vault.folder(Folder.DONE) / "R.md").meta["status"] == "done"


def _committed_task(vault: Vault, config: Config) -> tuple[str, str]:
    """A work dir with a task's two round commits (a file holding <script>, a binary file)."""
    from ai_employee.running.workrepo import WorkRepo

    work = config.apps_dir / "html" / "page"
    work.mkdir(parents=True)
    (work / "old.txt").write_text("one\ntwo\n")
    repo = WorkRepo(work, "Page", "dddddddd", 1 << 20)
    base = repo.begin(None)
    (work / "index.html").write_text("<script>alert('x')</script>\n<p>hi</p>\n")
    repo.commit_round(1, 1)
    (work / "old.txt").write_text("one\n")
    (work / "logo.png").write_bytes(b"\x89PNG\x00\x01")
    repo.commit_round(1, 2)
    return base, repo.changes(base).head


def test_a_repo_tasks_changes_are_read_from_its_repository_after_its_worktree_is_gone(
    vault: Vault, config: Config, client: TestClient
) -> None:
    from ai_employee.running.workrepo import WorkRepo
    from ai_employee.running.worktree import TaskWorktree

    shop = config.apps_dir / "repos" / "shop"  # inside the allowed roots
    shop.mkdir(parents=True)
    (shop / "a.txt").write_text("a\n")
    subprocess.run(["git", "-C", str(shop), "init", "-q"], check=True)
    WorkRepo(shop, "first", "-", 1 << 20).begin(None)  # a first commit
    path = config.apps_dir / ".worktrees" / "rrrrrrrr"
    nothing = {"branch": None, "base_branch": None, "head_commit": None}
    worktree = TaskWorktree(str(shop), config.allowed_roots, path, "rrrrrrrr", None, nothing)
    opened = worktree.open()
    repo = WorkRepo(path, "R", "rrrrrrrr", 1 << 20)
    base = repo.begin(None)
    (path / "b.txt").write_text("<b>new</b>\n")
    repo.commit_round(1, 1)
    head = repo.changes(base).head
    assert worktree.close() is None and not path.exists()
    write(
        vault,
        Folder.PENDING_APPROVAL,
        "R.md",
        task_text(
            "R", "rrrrrrrr", "in_review", repo=shop, branch=opened.branch,
            base_commit=base, head_commit=head, changes="1 file, +1 -0",
        ),
    )  # fmt: skip
    write(
        vault,
        Folder.PENDING_APPROVAL,
        "Out.md",
        task_text("Out", "oooooooo", "in_review", repo="/etc", base_commit=base, head_commit=head),
    )
    wait_for(lambda: in_column(client, "waiting") == ["Out", "R"], what="the cards")
    page = client.get("/task/rrrrrrrr").text
    changes = page.split('<section class="changes" id="changes">', 1)[1].split("</section>")[0]
    assert "<code>b.txt</code>" in changes and "&lt;b&gt;new&lt;/b&gt;" in changes
    raw = client.get(f"/diff/rrrrrrrr?base={base}&head={head}")
    assert raw.status_code == 200 and "+<b>new</b>" in raw.text
    out = client.get("/task/oooooooo").text
    assert "repo &#39;/etc&#39; is outside the allowed roots" in out, "git never runs there"
    assert client.get(f"/diff/oooooooo?base={base}&head={head}").status_code == 404


def test_a_tasks_page_shows_its_changes_escaped_file_by_file_and_round_by_round(
    vault: Vault, config: Config, client: TestClient
) -> None:
    base, head = _committed_task(vault, config)
    write(
        vault,
        Folder.PENDING_APPROVAL,
        "D.md",
        task_text(
            "D", "dddddddd", "in_review", language="html", app="page",
            base_commit=base, head_commit=head, changes="3 files, +2 -1",
        ),
    )  # fmt: skip
    wait_for(lambda: in_column(client, "waiting") == ["D"], what="the card")
    card = client.get("/").text.split('data-ref="dddddddd"', 1)[1].split("</article>", 1)[0]
    assert '<span class="lines" title="3 files, +2 -1">+2 -1</span>' in card
    page = client.get("/task/dddddddd").text
    changes = page.split('<section class="changes" id="changes">', 1)[1].split("</section>")[0]
    assert '3 files, <span class="add">+2</span> <span class="del">−1</span>' in changes
    assert "<script>alert" not in changes and "&lt;script&gt;alert" in changes
    assert '<code>logo.png</code> <span class="muted">binary</span>' in changes
    assert changes.count('<details class="file"') == 3
    commits = re.findall(r'href="\?commit=([0-9a-f]{40})#changes"', changes)
    assert len(commits) == 2, "a commit per round, each its own view"
    second = client.get(f"/task/dddddddd?commit={commits[1]}").text
    assert second.count('<details class="file"') == 2  # the second round: old.txt, logo.png
    raw = client.get(f"/diff/dddddddd?base={base}&head={head}")
    assert raw.headers["content-type"].startswith("text/plain")
    assert "+<script>alert('x')</script>" in raw.text and "-two" in raw.text
    assert client.get("/diff/dddddddd?base=--output=x&head=HEAD").status_code == 404


def test_the_new_task_form_takes_after_and_the_card_says_what_a_task_waits_for(
    vault: Vault, client: TestClient
) -> None:
    form = {"csrf": csrf(client), "title": "Docs", "after": "[[Build]]\r\n\r\nabc123\r\n"}
    response = client.post("/new", data=form, headers=ORIGIN)
    assert response.status_code == 303
    path = vault.folder(Folder.NEEDS_ACTION) / "Docs.md"
    assert note(path).meta["after"] == ["[[Build]]", "abc123"]
    # as the service leaves it while it waits
    (vault.folder(Folder.NEEDS_ACTION) / "Wait.md").write_text(
        task_text("Wait", "w1", "planned", waiting_for='"Build (b1) <b>now</b>"')
    )
    page = wait_for(lambda: "waits for" in (t := client.get("/").text) and t, what="the card")
    assert "waits for Build (b1) &lt;b&gt;now&lt;/b&gt;" in page


def test_the_new_task_form_takes_every_and_the_board_lists_the_series(
    vault: Vault, client: TestClient
) -> None:
    assert "No series." in client.get("/").text
    bad = client.post(
        "/new", data={"csrf": csrf(client), "title": "B", "every": "5s"}, headers=ORIGIN
    )
    assert bad.status_code == 400 and "is shorter than 10s" in bad.text
    form = {"csrf": csrf(client), "title": "Backup <check>", "every": "0 3 * * *"}
    response = client.post("/new", data=form, headers=ORIGIN)
    assert response.status_code == 303 and response.headers["location"].startswith("/?notice=")
    path = vault.folder(Folder.RECURRING) / "Backup check.md"
    assert note(path).meta["every"] == "0 3 * * *" and "task_id" not in note(path).meta
    board = client.get("/").text
    assert 'Backup &lt;check&gt;</span> <span class="muted">every <code>0 3 * * *</code>' in board
    assert "not seen by the service yet" in board
    (vault.folder(Folder.RECURRING) / "Standup.md").write_text(
        '---\ntitle: Standup\nevery: "0 8 * * 1-5"\nnext_at: 2026-12-07T08:00:00+01:00\n'
        "last_occurrence: 2026-12-04T08:00:00+01:00\n---\nNotes.\n"
    )
    board = client.get("/").text
    assert "next Mon 07 Dec 08:00 +01:00 · last Fri 04 Dec 08:00 +01:00" in board
    assert board.index("Standup</span>") < board.index("Backup &lt;check&gt;"), "soonest first"
