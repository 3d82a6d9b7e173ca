"""The page in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright),
against the real service and a real agent process: create a task and watch it reach Done with
its output appearing live, approve a waiting one, filter the board, and a `<script>` note
that must not run."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from ai_employee.base.config import Config
from ai_employee.notes.vault import Folder, Vault
from ai_employee.surfaces.web import Running, serve_in_thread

from .helpers import wait_for
from .service_harness import running_service, svc_config

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
"""The issue's flags, and those that keep Chromium from calling out of a closed network."""

AGENT = (
    "sh -c 'echo first-line; while [ ! -e {workdir}/go ]; do sleep 0.02; done; echo second-line'"
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), "scripts/system-packages.sh installs Debian's chromium"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    tab = context.new_page()
    tab.set_default_timeout(20_000)
    yield tab
    context.close()


@pytest.fixture
def served(vault: Vault) -> Iterator[tuple[Config, Running]]:
    config = svc_config(vault, agent_command=AGENT, auto_execute_types="claude_task")
    with running_service(config):
        running = serve_in_thread(config, "127.0.0.1", 0, print_line=lambda line: None)
        try:
            yield config, running
        finally:
            running.stop()


def base(running: Running) -> str:
    return f"http://127.0.0.1:{running.address.port}"


def test_create_a_task_and_watch_it_run_live_to_done(
    page: Page, served: tuple[Config, Running]
) -> None:
    config, running = served
    page.goto(base(running) + "/new")
    page.fill("input[name=title]", "Browser task")
    page.fill("textarea[name=body]", "Say two lines.")
    page.click("#create")
    page.wait_for_url("**/task/*")
    task_id = page.url.rsplit("/", 1)[1]
    turns = page.locator("#turns")
    expect(turns).to_contain_text("first-line")  # live: the run is still going
    expect(page.locator("#task-status")).to_have_text("executing")
    assert "second-line" not in turns.inner_text()
    expect(page.locator("#live-state")).to_have_text("· live")
    duration = page.locator("#duration")
    expect(duration).to_have_text(re.compile(r"^(now|\d+s) so far$"))
    counted = duration.inner_text()
    expect(duration).not_to_have_text(counted, timeout=5_000)  # counted on without a redraw
    (config.apps_dir / "tasks" / task_id / "go").touch()
    expect(turns).to_contain_text("second-line")
    expect(page.locator("#task-status")).to_have_text("done")
    expect(page.locator("#live-state")).to_have_text("· finished")
    assert turns.inner_text().count("first-line") == 1  # each line once
    page.goto(base(running) + "/")
    expect(page.locator("[data-column=done] .card")).to_have_count(1)
    expect(page.locator("[data-column=done] .card .title")).to_have_text("Browser task")


def test_approve_a_waiting_task_from_its_card(
    page: Page, served: tuple[Config, Running], vault: Vault
) -> None:
    config, running = served
    page.goto(base(running) + "/")
    note = vault.folder(Folder.NEEDS_ACTION) / "Deploy.md"
    note.write_text("---\ntitle: Deploy it\ntype: deploy\n---\nShip.\n")
    waiting = page.locator("[data-column=waiting] .card")
    expect(waiting).to_have_count(1)  # the service held it; the page heard it
    expect(page.locator("#badge")).to_have_text("1 needs you")
    waiting.locator("button[data-act=approve]").click()
    expect(page.locator(".flash.notice")).to_contain_text("pending_approval -> ")
    expect(page.locator("[data-column=waiting] .card")).to_have_count(0)
    expect(page.locator("[data-column=running] .card")).to_have_count(1)
    moved = vault.folder(Folder.NEEDS_ACTION) / "Deploy.md"
    wait_for(lambda: moved.exists() and "approved_by" in moved.read_text(), what="the approval")
    task_id = next(
        line.split(": ", 1)[1]
        for line in moved.read_text().splitlines()
        if line.startswith("task_id")
    )
    (config.apps_dir / "tasks" / task_id / "go").touch()
    expect(page.locator("[data-column=done] .card .title")).to_have_text("Deploy it")
    expect(page.locator("#badge")).to_have_text("0 need you")


def test_filter_the_board(page: Page, served: tuple[Config, Running], vault: Vault) -> None:
    _, running = served
    for name, kind, prio in (
        ("Alpha", "web", "high"),
        ("Beta", "cli", "low"),
        ("Gamma", "web", "low"),
    ):
        (vault.folder(Folder.DONE) / f"{name}.md").write_text(
            f"---\ntitle: {name}\ntype: {kind}\npriority: {prio}\nstatus: done\n---\n"
        )
    # The filters' choices are drawn with the page: load it once the page's view has the notes.
    board = base(running) + "/api/board"
    wait_for(lambda: page.request.get(board).json()["total"] == 3, what="the view of 3 notes")
    page.goto(base(running) + "/")
    cards = page.locator("[data-column=done] .card .title")
    expect(cards).to_have_count(3)
    # Each choice submits the form: wait for the page it loads before the next choice.
    page.select_option("select[name=type]", "web")  # applies at once
    page.wait_for_url("**type=web**")
    expect(cards).to_have_count(2)
    page.select_option("select[name=priority]", "low")
    page.wait_for_url("**priority=low**")
    expect(cards).to_have_text(["Gamma"])
    page.fill("input[name=q]", "alp")
    page.select_option("select[name=priority]", "")
    page.wait_for_url("**q=alp**")
    expect(cards).to_have_text(["Alpha"])
    assert "type=web" in page.url and "q=alp" in page.url


def test_a_script_in_a_note_does_not_run(
    page: Page, served: tuple[Config, Running], vault: Vault
) -> None:
    _, running = served
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    (vault.folder(Folder.DONE) / "Evil.md").write_text(
        "---\ntitle: <script>window.pwned = 1; alert('title')</script>\ntask_id: evilevil\n"
        "status: done\n---\n<script>window.pwned = 2; alert('body')</script>\n\n"
        "<img src=x onerror=\"window.pwned = 3; alert('img')\">\n\n"
        "[click me](javascript:window.pwned=4)\n"
    )
    page.goto(base(running) + "/")
    expect(page.locator("[data-column=done] .card .title")).to_contain_text("<script>")
    page.goto(base(running) + "/task/evilevil")
    expect(page.locator("#note-body")).to_contain_text("<script>window.pwned = 2")
    page.get_by_text("[click me](javascript:window.pwned=4)").click()
    assert page.evaluate("typeof window.pwned") == "undefined"
    assert page.locator("#note-body a[href^=javascript]").count() == 0
    assert page.locator("script").count() == 1  # ours: /static/app.js
    assert dialogs == []


PHONE = {"width": 390, "height": 844}
TABLET = {"width": 820, "height": 1180}


@pytest.mark.parametrize("viewport", [PHONE, TABLET], ids=["phone", "tablet"])
def test_on_a_phone_or_tablet_what_needs_you_is_on_the_first_screen(
    browser: Browser, served: tuple[Config, Running], vault: Vault, viewport: dict[str, int]
) -> None:
    _, running = served
    for i in range(12):
        (vault.folder(Folder.DONE) / f"Done {i}.md").write_text(
            f"---\ntitle: Finished task {i}\ntask_id: done{i:04d}\nstatus: done\n---\nx\n"
        )
    (vault.folder(Folder.NEEDS_ACTION) / "Deploy.md").write_text(
        "---\ntitle: Deploy it\ntype: deploy\n---\nShip.\n"
    )
    wait_for(
        lambda: (vault.folder(Folder.PENDING_APPROVAL) / "Deploy.md").exists(), what="the hold"
    )
    context = browser.new_context(viewport=viewport, is_mobile=viewport is PHONE, has_touch=True)
    page = context.new_page()
    page.set_default_timeout(20_000)
    try:
        page.goto(base(running) + "/")
        card = page.locator("[data-column=waiting] .card")
        expect(card).to_have_count(1)
        # Whole, on the first screen (the page has not scrolled: it just loaded).
        expect(card).to_be_in_viewport(ratio=1)
        assert page.evaluate("window.scrollY") == 0
        # A button a thumb can hit (asked of the page as it is: a live redraw may replace it).
        page.wait_for_function(
            """() => {
                const b = document.querySelector("[data-column=waiting] .card [data-act=approve]");
                return b !== null && b.getBoundingClientRect().height >= 40;
            }"""
        )
        wide = page.evaluate("document.documentElement.scrollWidth")
        assert wide <= viewport["width"], f"the page scrolls sideways: {wide} px"
        page.click("#badge")
        page.wait_for_url("**/#needs-you")
        expect(page.locator("#needs-you")).to_have_attribute("data-column", "waiting")
    finally:
        context.close()


def test_reject_asks_once_more_and_the_keyboard_answers(
    page: Page, served: tuple[Config, Running], vault: Vault
) -> None:
    _, running = served
    (vault.folder(Folder.NEEDS_ACTION) / "Deploy.md").write_text(
        "---\ntitle: Deploy it\ntype: deploy\n---\nShip.\n"
    )
    waiting = vault.folder(Folder.PENDING_APPROVAL) / "Deploy.md"
    wait_for(waiting.exists, what="the hold")
    page.goto(base(running) + "/")
    card = page.locator("[data-column=waiting] .card")
    card.locator("button[data-act=reject]").click()
    expect(page.locator("h1")).to_have_text("Reject “Deploy it”?")
    expect(page.locator("#confirm")).to_be_focused()
    page.keyboard.press("Escape")  # no
    page.wait_for_url(base(running) + "/")
    expect(page.locator("[data-column=waiting] .card")).to_have_count(1)
    assert waiting.exists()
    page.locator("[data-column=waiting] .card button[data-act=reject]").click()
    expect(page.locator("#confirm")).to_be_focused()
    page.keyboard.press("Enter")  # yes
    expect(page.locator(".flash.notice")).to_contain_text("pending_approval -> rejected")
    wait_for((vault.folder(Folder.REJECTED) / "Deploy.md").exists, what="the rejection")


def test_review_on_the_page_diff_escaped_a_comment_reaches_the_agent_accept_is_done(
    browser: Browser, vault: Vault, tmp_path: Path
) -> None:
    prompts = tmp_path / "prompts.txt"
    agent = (
        f'sh -c \'cat "$0" >> {prompts}; echo ---- >> {prompts}; '
        'echo "<script>window.pwned=1</script>" >> page.html\' {prompt_file}'
    )
    config = svc_config(vault, agent_command=agent)
    dialogs: list[str] = []
    with running_service(config):
        running = serve_in_thread(config, "127.0.0.1", 0, print_line=lambda line: None)
        page = browser.new_context().new_page()
        page.set_default_timeout(20_000)
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        try:
            (vault.folder(Folder.NEEDS_ACTION) / "Page.md").write_text(
                "---\ntitle: Page\nlanguage: html\napp: page\nreview: true\n---\nA page.\n"
            )
            waiting = vault.folder(Folder.PENDING_APPROVAL) / "Page.md"
            wait_for(lambda: waiting.exists() and "in_review" in waiting.read_text(), 30)
            task_id = re.search(r"task_id: (\w+)", waiting.read_text())
            assert task_id is not None
            page.goto(f"{base(running)}/task/{task_id.group(1)}")
            diff = page.locator("details.file[data-path='page.html'] pre.diff")
            expect(diff).to_contain_text("+<script>window.pwned=1</script>")
            assert page.evaluate("typeof window.pwned") == "undefined"
            expect(page.locator("#task-live[data-drawn]")).to_have_count(1)  # redrawn once
            page.fill("#review textarea[name=comment]", "Make it two lines.")
            page.fill("#review input[name=at]", "page.html:1")
            page.click("#review button[data-act=request_changes]")
            expect(page.locator(".flash.notice")).to_contain_text("in_review -> planned")
            wait_for(lambda: prompts.read_text().count("----") == 2, 30, "the second run")
            assert "In `page.html:1`: Make it two lines." in prompts.read_text().split("----")[1]
            expect(page.locator("#task-status")).to_have_text("in_review")
            expect(page.locator("details.file[data-path='page.html'] summary")).to_contain_text(
                "+2"
            )  # the page followed the second round's commit
            page.click("button[data-act=accept]")
            expect(page.locator(".flash.notice")).to_contain_text("in_review -> done")
            wait_for((vault.folder(Folder.DONE) / "Page.md").exists, 10, "accepted: Done/")
        finally:
            page.context.close()
            running.stop()
    assert dialogs == []


def test_a_live_redraw_keeps_what_a_person_is_typing_in_the_review_form(
    browser: Browser, vault: Vault, tmp_path: Path
) -> None:
    config = svc_config(vault, agent_command="sh -c 'echo hi >> page.html'")
    with running_service(config):
        running = serve_in_thread(config, "127.0.0.1", 0, print_line=lambda line: None)
        page = browser.new_context().new_page()
        page.set_default_timeout(20_000)
        try:
            note = vault.folder(Folder.NEEDS_ACTION) / "Page.md"
            note.write_text(
                "---\ntitle: Page\nlanguage: html\napp: p\nreview: true\n---\nA page.\n"
            )
            waiting = vault.folder(Folder.PENDING_APPROVAL) / "Page.md"
            wait_for(lambda: waiting.exists() and "in_review" in waiting.read_text(), 30)
            task_id = re.search(r"task_id: (\w+)", waiting.read_text())
            assert task_id is not None
            page.goto(f"{base(running)}/task/{task_id.group(1)}")
            # the redraw the live stream makes as it opens is done (typing into a form while
            # a redraw lands between Playwright's steps of one `fill` is not a person's typing)
            expect(page.locator("#task-live[data-drawn]")).to_have_count(1)
            page.fill("#review textarea[name=comment]", "Half a thought")
            page.focus("#review textarea[name=comment]")
            waiting.write_text(waiting.read_text().replace("A page.", "A page, redrawn live."))
            expect(page.locator("#task-live")).to_contain_text("A page, redrawn live.")
            expect(page.locator("#review textarea[name=comment]")).to_have_value("Half a thought")
            assert page.evaluate("document.activeElement.name") == "comment"
        finally:
            page.context.close()
            running.stop()
