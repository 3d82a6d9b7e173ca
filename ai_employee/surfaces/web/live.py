"""The page's live updates: the vault's own file events, pushed to each open page over SSE.

Threads: watchdog's observer thread only hands paths to the event loop
(`loop.call_soon_threadsafe`); everything else here, and the `VaultView` it refreshes, belongs
to the web server's event-loop thread. Paths that change together are taken in one go, a few
milliseconds after the first (`FLUSH_SECONDS`), so a burst of writes is one refresh.

What a page hears (`Event.kind`): `board` (a note arrived, changed or left; its data is the
badge's count), `task` (this task's note or plan changed), `turns` (this task's transcript grew;
each subscriber reads from its own offset), `status` (the lock or the audit log changed), and
`reload` (this page fell too far behind: it loads itself again).
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from pathlib import Path

import structlog
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from ...notes.taskfile import TASK_ID_SHAPE
from ...notes.vault import MACHINERY_DIR, TASK_FOLDERS, Folder, Vault
from .view import VaultView

log = structlog.get_logger(__name__)

FLUSH_SECONDS = 0.005
"""How long the loop waits after a first changed path for the others of the same write."""

QUEUE_SIZE = 256
"""Events a page may fall behind by before it is told to reload."""

_PLAN_TASK = re.compile(r"\(([A-Za-z0-9][A-Za-z0-9_-]{0,63})\)\.md$")


@dataclass(frozen=True)
class Event:
    kind: str
    task_id: str | None = None
    data: str = ""


@dataclass(eq=False)
class Subscription:
    """One open page: what it follows, and its queue (None in it means: the server stops)."""

    task_id: str | None = None
    queue: asyncio.Queue[Event | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    behind: bool = False


class _Handler(FileSystemEventHandler):
    """Runs on watchdog's thread: hands each path to the loop, nothing more."""

    def __init__(self, loop: asyncio.AbstractEventLoop, changed: LiveVault) -> None:
        self.loop = loop
        self.live = changed

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        for raw in (event.src_path, getattr(event, "dest_path", "")):
            if raw:
                path = Path(raw.decode() if isinstance(raw, bytes) else raw)
                try:
                    self.loop.call_soon_threadsafe(self.live.changed, path)
                except RuntimeError:  # the loop closed while the observer was stopping
                    return


class LiveVault:
    """The view kept current from file events, and the pages that listen. Loop thread only
    (but `start` and `stop`, which the server calls around the loop's life)."""

    def __init__(self, vault: Vault, view: VaultView, *, polling: bool = False) -> None:
        self.vault = vault
        self.view = view
        self.polling = polling
        self.subscribers: set[Subscription] = set()
        self._dirty: set[Path] = set()
        self._flush: asyncio.TimerHandle | None = None
        self._observer: BaseObserver | None = None
        self._folders = {vault.folder(f): f for f in TASK_FOLDERS}

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Watch the vault, then read it (a note that changes meanwhile is read again)."""
        self._loop = loop
        self._observer = PollingObserver() if self.polling else Observer()
        self._observer.schedule(_Handler(loop, self), str(self.vault.root), recursive=True)
        self._observer.daemon = True
        self._observer.start()
        cards = self.view.load()
        log.debug("dashboard view loaded", parameters={"cards": cards})

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
        self.close_all()

    def subscribe(self, task_id: str | None) -> Subscription:
        if task_id is not None and not TASK_ID_SHAPE.fullmatch(task_id):
            task_id = None
        sub = Subscription(task_id)
        self.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self.subscribers.discard(sub)

    def close_all(self) -> None:
        for sub in list(self.subscribers):
            self._put(sub, None)

    def changed(self, path: Path) -> None:
        self._dirty.add(path)
        if self._flush is None:
            self._flush = asyncio.get_running_loop().call_later(FLUSH_SECONDS, self._take)

    def changed_now(self, *paths: Path) -> None:
        """Paths the page itself just wrote: taken at once, so that the page it answers with
        (a redirect to the new task, the board after an act) already shows them."""
        self._dirty.update(paths)
        if self._flush is not None:
            self._flush.cancel()
        self._take()

    def _take(self) -> None:
        self._flush = None
        paths, self._dirty = self._dirty, set()
        board = False
        events: dict[tuple[str, str | None], Event] = {}
        for path in paths:
            try:
                found = self._events_for(path)
            except Exception:  # one odd file must not cost the others their update
                log.exception("dashboard: cannot take a changed path", target=str(path))
                continue
            for event in found:
                if event.kind == "board":
                    board = True
                else:
                    events[(event.kind, event.task_id)] = event
        if board:
            events[("board", None)] = Event("board", None, str(self.view.needs_you()))
        for event in events.values():
            self.publish(event)

    def _events_for(self, path: Path) -> list[Event]:
        parent = path.parent
        folder = self._folders.get(parent)
        if folder is not None:
            if not path.name.endswith(".md"):
                return []
            old = self.view.cards.get(self.vault.rel(path))
            card = self.view.refresh(path)
            task_ids = {c.task_id for c in (old, card) if c is not None and c.task_id}
            return [Event("board"), *(Event("task", t) for t in task_ids)]
        if parent == self.vault.transcripts and path.suffix == ".jsonl":
            return [Event("turns", path.stem)]
        if parent == self.vault.folder(Folder.PLANS):
            match = _PLAN_TASK.search(path.name)
            return [Event("task", match.group(1))] if match else []
        if parent == self.vault.logs and path.suffix == ".jsonl":
            return [Event("status")]
        if parent == self.vault.root / MACHINERY_DIR and path.name == "lock":
            return [Event("status")]
        return []

    def publish(self, event: Event) -> None:
        for sub in list(self.subscribers):
            if event.kind in ("task", "turns") and sub.task_id != event.task_id:
                continue
            self._put(sub, event)

    def _put(self, sub: Subscription, event: Event | None) -> None:
        try:
            sub.queue.put_nowait(event)
        except asyncio.QueueFull:
            sub.behind = True
            if event is None:  # the server stops: make room for the word
                sub.queue.get_nowait()
                sub.queue.put_nowait(None)
