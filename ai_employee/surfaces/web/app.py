"""The web page's routes: the board, a task, a new task, the audit log, and the live stream.

The vault is the only truth: pages are drawn from the notes (through `VaultView`), the plans,
the audit log and the transcripts, and every button calls the function the CLI calls
(`commands.add_task`, `approve`, `reject`, `retry`, `cancel`), in a worker thread, so that what
the page does is a note edit or move a person could have made. Requests name tasks by task_id
or by a path the view knows; nothing a request says is joined to a path unchecked.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

import structlog
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from ...base.config import Config
from ...base.errors import AiEmployeeError, NoteRefused
from ...base.logs import os_user
from ...notes.lifecycle import Priority, Status
from ...notes.notefile import peek_note
from ...notes.taskfile import RESULT_HEADING, TaskNote
from ...notes.vault import Folder, Vault, workdir_for
from ...running.rounds import base_in_transcript
from ...running.workrepo import GitError
from ...running.worktree import person_repo
from .. import commands, inventory
from . import auditlog, charts, diff, transcript
from .live import LiveVault, Subscription
from .render import markdown
from .security import CSRF_FIELD, CSRF_HEADER, SAFE_METHODS, TOKEN_COOKIE, Guard
from .servicestate import read_state
from .view import Card, Filters, VaultView, age, displayable, local, span, work_files

log = structlog.get_logger(__name__)

PACKAGE = __name__.rpartition(".")[0]
"""This package (ai_employee.surfaces.web): its templates/ and static/ are package data."""

KEEPALIVE_SECONDS = 15.0
"""An SSE comment this often keeps proxies and the browser from closing a quiet stream."""

MAX_PLAN_BYTES = 1_048_576
ACTIONS = ("approve", "accept", "request_changes", "reject", "retry", "cancel")
CONFIRM = {
    "cancel": "Its run, if one is going, is stopped, and the note goes to Done/ as cancelled "
    "(Retry brings it back).",
    "reject": "The note goes to Rejected/; it does not run unless a person approves it later. "
    "Work under review is undone: its work dir is put back as it was before the task (the "
    "task's commits are kept).",
}
"""The acts asked once more before they are done (they end a task), and what they do."""

MAX_RAW_BYTES = 64 * 1024
"""How much of a refused note its page shows as it is on disk."""
BUTTONS: dict[str, tuple[str, ...]] = {
    "new": ("cancel",),
    "planned": ("cancel",),
    "running": ("cancel",),
    "waiting": ("approve", "reject"),
    "failed": ("retry",),
    "cancelled": ("retry",),
    "refused": (),
    "done": (),
}
"""Which acts each column's cards offer (the lifecycle table has the last word)."""

REVIEW_BUTTONS = ("accept", "reject")
"""What a card whose work waits for a person's review offers."""


def acts_for(card: Card) -> tuple[str, ...]:
    """The acts a card offers: its column's, or a review's."""
    if card.status == Status.IN_REVIEW:
        return REVIEW_BUTTONS
    return BUTTONS.get(card.column, ())


@dataclass(frozen=True)
class Site:
    """What the routes share: the vault, its configuration, the view and the guard."""

    vault: Vault
    config: Config
    live: LiveVault
    guard: Guard
    templates: Environment
    series: inventory.SeriesCache = field(default_factory=inventory.SeriesCache)
    """The Recurring list's notes as last read (read again only when changed)."""

    @property
    def view(self) -> VaultView:
        return self.live.view


def stamp(value: object) -> str:
    """An ISO time as a note holds it, as a person reads it, in its own zone:
    `Mon 07 Dec 08:00 +01:00` (the text as it is when it is not one)."""
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    zone = moment.strftime("%z")
    return moment.strftime("%a %d %b %H:%M") + (f" {zone[:3]}:{zone[3:]}" if zone else "")


def _templates(guard: Guard) -> Environment:
    env = Environment(
        loader=PackageLoader(PACKAGE, "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["money"] = lambda v: f"${v:.2f}" if isinstance(v, int | float) else ""
    env.filters["local"] = local
    env.filters["stamp"] = stamp
    env.filters["url"] = lambda v: quote(str(v), safe="")
    env.globals["csrf_field"] = CSRF_FIELD
    env.globals["csrf_token"] = guard.csrf_token
    env.globals["acts_for"] = acts_for
    env.globals["priorities"] = [p.value for p in Priority]
    return env


def create_app(
    config: Config, guard: Guard, *, on_started: Callable[[], None] | None = None
) -> Starlette:
    """The page's ASGI app. Its lifespan watches the vault (live.py) while it serves."""
    vault = Vault(config.vault)
    view = VaultView(vault, config.max_note_bytes)
    live = LiveVault(vault, view, polling=config.polling)
    site = Site(vault, config, live, guard, _templates(guard))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        live.start(asyncio.get_running_loop())
        if on_started is not None:
            on_started()
        try:
            yield
        finally:
            live.stop()

    def page(handler: Callable[[Site, Request], Awaitable[Response]]) -> Callable[..., Any]:
        async def endpoint(request: Request) -> Response:
            return await handler(site, request)

        return endpoint

    routes = [
        Route("/", page(board_page)),
        Route("/board", page(board_fragment)),
        Route("/api/board", page(board_json)),
        Route("/status", page(status_json)),
        Route("/new", page(new_page), methods=["GET", "POST"]),
        Route("/log", page(log_page)),
        Route("/events", page(events)),
        Route("/act/{action}", page(act), methods=["POST"]),
        Route("/task/{ref:path}", page(task_page)),
        Route("/diff/{ref:path}", page(raw_diff_page)),
        Route("/favicon.ico", favicon),
        Mount("/static", StaticFiles(packages=[(PACKAGE, "static")]), name="static"),
    ]
    app = Starlette(
        routes=routes, lifespan=lifespan, middleware=[Middleware(GuardMiddleware, guard=guard)]
    )
    app.state.live = live
    return app


class GuardMiddleware:
    """security.Guard on every request (see security.py for what and why)."""

    def __init__(self, app: ASGIApp, guard: Guard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        host = request.headers.get("host", "")
        response: Response | None = None
        if not self.guard.allowed_host(host):
            response = PlainTextResponse("this page answers only to its own address\n", 421)
        elif self.guard.token is not None:
            given = request.query_params.get("token")
            if given is not None and self.guard.token_ok(given):
                rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
                path = request.url.path if request.url.path.startswith("/") else "/"
                path = "/" if path.startswith("//") or "\\" in path else path
                target = path + (f"?{urlencode(rest)}" if rest else "")
                response = RedirectResponse(target, 303)
                response.set_cookie(
                    TOKEN_COOKIE, given, httponly=True, samesite="strict", max_age=30 * 86400
                )
            elif not self.guard.token_ok(_presented_token(request)):
                response = PlainTextResponse(
                    "a token is needed: open the address `ai-employee dashboard` printed, or "
                    "read it from .ai-employee/dashboard-token\n",
                    401,
                )
        if response is None and request.method not in SAFE_METHODS:
            origin, referer = request.headers.get("origin"), request.headers.get("referer")
            if not self.guard.same_origin(origin, referer, host):
                response = PlainTextResponse("refused: the request is not from this page\n", 403)
        if response is not None:
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _presented_token(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.cookies.get(TOKEN_COOKIE)


def _render(
    site: Site, request: Request, name: str, status: int = 200, **context: Any
) -> HTMLResponse:
    now = datetime.now(UTC)
    base = {
        "request": request,
        "now": now,
        "age": lambda card: age(card, now),
        "running_for": lambda card: span(now.timestamp() - card.started.timestamp()),
        "service": read_state(site.vault, site.config.apps_dir),
        "needs_you": site.view.needs_you(),
        "vault_root": str(site.vault.root),
    }
    html = site.templates.get_template(name).render(**base, **context)
    return HTMLResponse(html, status)


SERIES_SHOWN = 20
"""The board's Recurring list shows the soonest this many."""


async def board_page(site: Site, request: Request) -> Response:
    filters = Filters.from_query(request.query_params)
    board = site.view.board(filters)
    today = charts.today_local(datetime.now(UTC))
    figures = charts.days(site.view.per_day, today)
    chart = charts.cost_chart(figures, site.config.daily_budget_usd)
    series = await run_in_threadpool(
        inventory.series_soonest, site.vault, site.config.max_note_bytes, site.series
    )
    return _render(
        site,
        request,
        "board.html",
        board=board,
        series=series[:SERIES_SHOWN],
        series_total=len(series),
        chart=chart,
        figures=figures,
        budget=site.config.daily_budget_usd,
        notice=request.query_params.get("notice", "")[:300],
        error=request.query_params.get("error", "")[:500],
    )


async def board_fragment(site: Site, request: Request) -> Response:
    board = site.view.board(Filters.from_query(request.query_params))
    return _render(site, request, "_board.html", board=board)


def _card_json(card: Card) -> dict[str, Any]:
    return {
        "path": displayable(card.rel),
        "task_id": card.task_id,
        "title": card.title,
        "status": card.status,
        "column": card.column,
        "type": card.task_type,
        "priority": card.priority,
        "attempts": card.attempts,
        "cost_usd": card.cost_usd,
        "error": card.error,
    }


async def board_json(site: Site, request: Request) -> Response:
    board = site.view.board(Filters.from_query(request.query_params))
    return JSONResponse(
        {
            "total": board.total,
            "needs_you": board.needs_you,
            "columns": {
                cv.column.key: {"count": cv.count, "cards": [_card_json(c) for c in cv.cards]}
                for cv in board.columns
            },
        }
    )


async def status_json(site: Site, request: Request) -> Response:
    state = await run_in_threadpool(read_state, site.vault, site.config.apps_dir)
    return JSONResponse(
        {
            "running": state.running,
            "pid": state.pid,
            "since": state.since.isoformat() if state.since else None,
            "words": state.words,
            "paused": state.paused or None,
            "disk": list(state.disk),
            "last_event": state.last_event,
            "last_event_at": state.last_event_at.isoformat() if state.last_event_at else None,
            "needs_you": site.view.needs_you(),
        }
    )


# -- the task page ---------------------------------------------------------------------------


def _split_result(note: TaskNote) -> tuple[str, str]:
    """The person's body, and the text of our `## Result` section without its heading."""
    body = note.body_without_result
    result = note.body[len(body) :].lstrip("\n")
    return body, result.removeprefix(RESULT_HEADING)


def _plan_text(site: Site, note: TaskNote) -> str:
    """The plan the note links to, read from Plans/ only (never through a symlink)."""
    link = str(note.meta.get("plan") or "").strip()
    if not link:
        return ""
    name = Path(link.strip("[]").split("|", 1)[0]).name
    if not name or name in (".", ".."):
        return ""
    path = site.vault.folder(Folder.PLANS) / (name if name.endswith(".md") else name + ".md")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except (OSError, ValueError):  # ValueError: a NUL in the link
        return ""
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            return ""
        data = handle.read(MAX_PLAN_BYTES)
    text = data.decode("utf-8", errors="replace")
    if text.startswith("---"):  # the plan's own head (its record) is machinery, not the plan
        end = text.find("\n---", 3)
        if end > 0:
            text = text[text.find("\n", end + 1) + 1 :]
    return text


def _work_dir(
    site: Site, note: TaskNote, card: Card
) -> tuple[str, list[tuple[str, int]], bool, str]:
    if not card.task_id:
        return "", [], False, ""
    try:
        path = workdir_for(
            site.config.apps_dir,
            site.config.allowed_roots,
            card.task_id,
            note.meta.get("language"),
            note.meta.get("app"),
            note.meta.get("repo"),
        )
    except NoteRefused as err:
        return "", [], False, err.reason
    files, more = work_files(path)
    return str(path), files, more, ""


def _range(site: Site, note: TaskNote, card: Card, workdir: Path | None) -> tuple[str, str] | None:
    """The task's base and head commits: as its note records them; while it runs (or before
    its first end), its transcript's base and the work dir's HEAD (`workdir`: None when it is
    not there)."""
    base, head = note.meta.get("base_commit"), note.meta.get("head_commit")
    running = card.status == Status.EXECUTING
    if not diff.is_sha(base) and card.task_id:
        base = base_in_transcript(site.vault.transcripts / f"{card.task_id}.jsonl")
    if (running or not diff.is_sha(head)) and workdir is not None:
        head = diff.head_of(workdir)
    if diff.is_sha(base) and diff.is_sha(head):
        return str(base), str(head)
    return None


def _changes(
    site: Site, note: TaskNote, card: Card, workdir: str, commit: str
) -> tuple[diff.TaskDiff | None, str]:
    """What the task changed (or one of its commits, `commit`), for its page: read in its
    work dir, or for a task on a person's repository in that repository (its worktree is
    there only while it runs)."""
    try:
        where = _repo_of(site, note, workdir)
        if where is None:
            return None, ""
        live = Path(workdir) if workdir and Path(workdir).is_dir() else None
        span = _range(site, note, card, live)
        if span is None:
            return None, ""
        whole = diff.read_diff(where, *span)
        if commit and commit in {c.sha for c in whole.commits}:  # one round's commit
            return diff.read_commit(where, commit, whole.commits), ""
        return whole, ""
    except GitError as err:
        return None, str(err)


def _repo_of(site: Site, note: TaskNote, workdir: str) -> Path | None:
    """Where git reads a task's commits (None: nowhere yet); GitError for a `repo:` the task
    may not use (the page says why, as the run did)."""
    if note.on_repo:
        return person_repo(note.meta.get("repo"), site.config.allowed_roots)
    return Path(workdir) if workdir and Path(workdir).is_dir() else None


def _task_context(site: Site, card: Card, commit: str = "") -> dict[str, Any]:
    path = site.view.path_of(card)
    try:
        note, _ = peek_note(path, site.vault.root, site.config.max_note_bytes)
    except (NoteRefused, OSError) as err:
        reason = err.reason if isinstance(err, NoteRefused) else str(err)
        return {"card": card, "note": None, "refused": reason, "raw": raw_text(path)}
    body, result = _split_result(note)
    workdir, files, more_files, workdir_error = _work_dir(site, note, card)
    turns: list[transcript.Turn] = []
    offset = 0
    if card.task_id:
        turns, offset = transcript.read_from(site.vault.transcripts / f"{card.task_id}.jsonl", 0)
    meta = {str(k): v for k, v in note.meta.items()}
    changes, changes_error = _changes(site, note, card, workdir, commit)
    return {
        "card": card,
        "note": note,
        "meta": meta,
        "diff": changes,
        "diff_error": changes_error,
        "body_html": markdown(body),
        "result_html": markdown(result) if result.strip() else Markup(""),
        "plan_html": markdown(_plan_text(site, note)),
        "workdir": workdir,
        "files": files,
        "more_files": more_files,
        "workdir_error": workdir_error,
        "turns": turns,
        "offset": offset,
        "started": note.when("started_at"),
        "completed": note.when("completed_at"),
    }


def raw_text(path: Path) -> str | None:
    """A refused note as it is on disk, for a person to see the reason against it: its first
    `MAX_RAW_BYTES` as text (what is not UTF-8 replaced), a regular file only, never through a
    symlink; None when nothing can be shown."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except (OSError, ValueError):
        return None
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(handle.fileno())
        if not stat.S_ISREG(st.st_mode):
            return None
        data = handle.read(MAX_RAW_BYTES)
    text = data.decode("utf-8", errors="replace").replace("\x00", "\ufffd")
    more = st.st_size - len(data)
    return text + (f"\n… ({more:,} more bytes)" if more > 0 else "")


async def task_page(site: Site, request: Request) -> Response:
    ref = request.path_params["ref"]
    card = site.view.find(ref)
    if card is None:
        return _render(site, request, "missing.html", 404, ref=ref)
    commit = request.query_params.get("commit", "")
    context = await run_in_threadpool(_task_context, site, card, commit)
    name = "_task_detail.html" if request.query_params.get("fragment") else "task.html"
    return _render(
        site,
        request,
        name,
        **context,
        notice=request.query_params.get("notice", "")[:300],
        error=request.query_params.get("error", "")[:500],
    )


async def raw_diff_page(site: Site, request: Request) -> Response:
    """A task's whole diff as text (`?base=&head=`: commits of its work dir, checked)."""
    card = site.view.find(request.path_params["ref"])
    if card is None:
        return PlainTextResponse("no such task\n", 404)
    base, head = request.query_params.get("base", ""), request.query_params.get("head", "")

    def read() -> str:
        note, _ = peek_note(site.view.path_of(card), site.vault.root, site.config.max_note_bytes)
        workdir, _, _, error = _work_dir(site, note, card)
        where = None if error else _repo_of(site, note, workdir)
        if where is None:
            raise GitError(error or "the task has no work dir")
        return diff.raw_diff(where, base, head)

    try:
        text = await run_in_threadpool(read)
    except (GitError, NoteRefused, OSError) as err:
        return PlainTextResponse(f"no diff: {err}\n", 404)
    return PlainTextResponse(text, headers={"X-Content-Type-Options": "nosniff"})


async def favicon(request: Request) -> Response:
    """The icon, where a browser asks for it without reading the page's <link>."""
    icon = resources.files(PACKAGE).joinpath("static", "favicon.svg").read_bytes()
    return Response(icon, media_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"})


# -- acts ------------------------------------------------------------------------------------


Form = dict[str, str]


async def _form(request: Request, limit: int) -> Form | None:
    """An urlencoded form (all the page sends), or None when it is larger than `limit`."""
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > limit:
            return None
    pairs = parse_qsl(data.decode("utf-8", errors="replace"), keep_blank_values=True)
    return dict(pairs)


def _back(form: Form, fallback: str = "/") -> str:
    """Where to return after an act: a path on this site only."""
    back = str(form.get("back") or fallback)
    # Browsers drop tabs and newlines from a URL: "/\t/host" would be "//host", another site.
    on_site = back.startswith("/") and not back.startswith("//") and "\\" not in back
    return back if on_site and all(ord(c) > 32 and c != "\x7f" for c in back) else fallback


def _with(url: str, **params: str) -> str:
    joiner = "&" if "?" in url else "?"
    return url + joiner + urlencode(params)


async def act(site: Site, request: Request) -> Response:
    action = request.path_params["action"]
    form = await _form(request, 64 * 1024)
    if form is None:
        return PlainTextResponse("refused: the request is too large\n", 413)
    if not site.guard.csrf_ok(_csrf(request, form)):
        return PlainTextResponse("refused: the page is stale; reload it and try again\n", 403)
    if action not in ACTIONS:
        return PlainTextResponse(f"unknown act {action!r}\n", 404)
    ref = str(form.get("ref") or "")
    card = site.view.find(ref)
    back = _back(form)
    if card is None:
        return RedirectResponse(_with(back, error=f"no task {ref!r} on the board"), 303)
    if action in CONFIRM and form.get("confirmed") != "1":  # one more step: it ends a task
        return _render(
            site,
            request,
            "confirm.html",
            card=card,
            action=action,
            question=CONFIRM[action],
            back=back,
        )
    command = getattr(commands, action)
    path = site.view.path_of(card)
    said: dict[str, str] = {}  # a review's comment, and what it is about
    if action == "request_changes":
        said = {"comment": str(form.get("comment") or ""), "at": str(form.get("at") or "")}
    try:
        edited = await run_in_threadpool(
            functools.partial(
                command,
                site.vault,
                site.config,
                str(path),
                actor=_actor(),
                now=datetime.now(UTC),
                **said,
            )
        )
    except AiEmployeeError as err:
        return RedirectResponse(_with(back, error=f"{action}: {err}"), 303)
    site.live.changed_now(path, edited.path)
    old = edited.old.value if edited.old else "new"
    notice = f"{edited.task_id}: {old} -> {edited.new.value}"
    return RedirectResponse(_with(back, notice=notice), 303)


def _csrf(request: Request, form: Form) -> str | None:
    return form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)


def _actor() -> str:
    """Who acts from the page, as the audit log and `approved_by` record it."""
    return f"{os_user()} (web)"


# -- new task --------------------------------------------------------------------------------

MAX_TITLE_CHARS = 200


async def new_page(site: Site, request: Request) -> Response:
    types = sorted(set(site.config.auto_execute_types) | {site.config.default_type})
    if request.method == "GET":
        return _render(site, request, "new.html", form={}, errors=[], types=types)
    form = await _form(request, site.config.max_note_bytes + 64 * 1024)
    if form is None:
        return PlainTextResponse("refused: the note would be over max_note_bytes\n", 413)
    if not site.guard.csrf_ok(_csrf(request, form)):
        return PlainTextResponse("refused: the page is stale; reload it and try again\n", 403)
    values = {
        k: str(form.get(k) or "")
        for k in ("title", "type", "priority", "app", "language", "after", "every", "body")
    }
    errors = []
    if not values["title"].strip():
        errors.append("a title is needed")
    if len(values["title"]) > MAX_TITLE_CHARS:
        errors.append(f"the title is over {MAX_TITLE_CHARS} characters")
    if len(values["body"].encode()) > site.config.max_note_bytes - 4096:
        errors.append(f"the text is over max_note_bytes ({site.config.max_note_bytes:,})")
    if not errors:
        try:
            added = await run_in_threadpool(
                lambda: commands.add_task(
                    site.vault,
                    site.config,
                    values["title"],
                    task_type=values["type"].strip() or None,
                    priority=values["priority"] or None,
                    body=values["body"].replace("\r\n", "\n"),
                    app=values["app"].strip() or None,
                    language=values["language"].strip() or None,
                    after=[a for a in values["after"].splitlines() if a.strip()],
                    every=values["every"].strip() or None,
                    actor=_actor(),
                )
            )
        except AiEmployeeError as err:
            errors.append(str(err))
        else:
            site.live.changed_now(added.path)
            if added.task_id is None:  # a series: its occurrences are the tasks
                notice = f"series added: {site.vault.rel(added.path)}"
                return RedirectResponse(f"/?{urlencode({'notice': notice})}", 303)
            return RedirectResponse(f"/task/{quote(added.task_id)}", 303)
    return _render(site, request, "new.html", 400, form=values, errors=errors, types=types)


# -- the audit log ---------------------------------------------------------------------------


async def log_page(site: Site, request: Request) -> Response:
    filters = auditlog.LogFilters.from_query(request.query_params)
    lines = await run_in_threadpool(auditlog.newest, site.vault.logs, filters)
    actions = await run_in_threadpool(auditlog.actions, site.vault.logs)
    return _render(
        site,
        request,
        "log.html",
        lines=lines,
        filters=filters,
        actions=actions,
        levels=auditlog.LEVELS,
        limit=auditlog.MAX_ENTRIES,
    )


# -- the live stream -------------------------------------------------------------------------


def _sse(kind: str, data: str) -> bytes:
    lines = data.splitlines() or [""]
    return (f"event: {kind}\n" + "".join(f"data: {line}\n" for line in lines) + "\n").encode()


async def events(site: Site, request: Request) -> Response:
    """Server-sent events for one page: `?task=<task_id>&offset=<bytes of its transcript>`."""
    task_id = request.query_params.get("task") or None
    try:
        offset = max(0, int(request.query_params.get("offset") or 0))
    except ValueError:
        offset = 0
    sub = site.live.subscribe(task_id)
    turns_template = site.templates.get_template("_turns.html")

    def _turns_event(turns: list[transcript.Turn], offset: int) -> bytes:
        html = turns_template.render(turns=turns)
        return _sse("turns", json.dumps({"offset": offset, "html": html}))

    async def stream() -> AsyncIterator[bytes]:
        nonlocal offset
        try:
            yield b"retry: 2000\n\n"
            if sub.task_id:  # what was written between the page's drawing and this stream
                turns, offset = await run_in_threadpool(
                    transcript.read_from, _transcript(site, sub), offset
                )
                if turns:
                    yield _turns_event(turns, offset)
            while True:
                try:
                    event = await asyncio.wait_for(sub.queue.get(), KEEPALIVE_SECONDS)
                except TimeoutError:
                    yield b": keepalive\n\n"
                    continue
                if event is None:
                    yield _sse("bye", "")
                    return
                if sub.behind:
                    yield _sse("reload", "")
                    return
                if event.kind == "turns":
                    turns, offset = await run_in_threadpool(
                        transcript.read_from, _transcript(site, sub), offset
                    )
                    if turns:
                        yield _turns_event(turns, offset)
                else:
                    yield _sse(event.kind, event.data or json.dumps(event.task_id))
        finally:
            site.live.unsubscribe(sub)

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


def _transcript(site: Site, sub: Subscription) -> Path:
    return site.vault.transcripts / f"{sub.task_id}.jsonl"  # task_id checked in subscribe()
