"""Serving the page with uvicorn: in the foreground (`ai-employee dashboard`), or in a thread of
the service (`run --dashboard`), which stops it when the service stops.

The listening socket is ours: bound here (so a taken port is one clear error before anything
starts) with TCP_NODELAY, which the connections inherit. Without it a live line waits for the
peer's delayed ACK (Nagle's algorithm) and reaches the browser ~40 ms late.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import FrameType

import structlog
import uvicorn

from ...base.config import Config
from ...base.errors import DashboardError
from ...notes.vault import Vault
from .app import create_app
from .live import LiveVault
from .security import Guard, is_loopback, load_or_create_token

log = structlog.get_logger(__name__)

SHUTDOWN_SECONDS = 3
"""After a stop, open streams get this long to close before the server lets them go."""


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, or one clear error naming the address."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as err:
        raise DashboardError(f"dashboard: cannot resolve {host!r}: {err.strerror}") from err
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(address)
        sock.listen(128)
    except OSError as err:
        sock.close()
        raise DashboardError(
            f"dashboard: cannot listen on {host}:{port}: {err.strerror} "
            "(another program has the port? choose one with --port or dashboard_port)"
        ) from err
    sock.set_inheritable(True)
    return sock


@dataclass(frozen=True)
class Address:
    host: str
    port: int
    token: str | None
    token_is_new: bool

    @property
    def base(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    @property
    def url(self) -> str:
        return f"{self.base}?token={self.token}" if self.token else self.base


def prepare(config: Config, host: str, port: int) -> tuple[socket.socket, Guard, Address]:
    """Bind, and make the guard (with a token, off loopback)."""
    sock = bind(host, port)
    port = sock.getsockname()[1]
    token: str | None = None
    new = False
    if not is_loopback(host):
        vault = Vault(config.vault)
        token, new = load_or_create_token(vault.machinery, vault.tmp)
    return sock, Guard(host, port, token), Address(host, port, token, new)


class _Server(uvicorn.Server):
    """uvicorn's server, with the live streams closed as its shutdown begins, and signals that
    end it with exit 0 (uvicorn raises them again after its shutdown). In a thread other than
    the main one it touches no signal: the service owns them."""

    def __init__(self, config: uvicorn.Config, live: LiveVault) -> None:
        super().__init__(config)
        self.live = live
        self.ready = threading.Event()
        """Set once it listens (or failed to start: then `started` stays False)."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets)
        finally:
            self.ready.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def stop(signum: int, frame: FrameType | None) -> None:
            self.force_exit = self.should_exit  # a second signal: do not wait for the streams
            self.should_exit = True

        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.live.close_all()  # streams end only when told; the graceful shutdown waits for them
        await super().shutdown(sockets)


def _uvicorn(app: object) -> uvicorn.Config:
    return uvicorn.Config(
        app,  # type: ignore[arg-type]  # an ASGI app; uvicorn's own type is a Callable union
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=SHUTDOWN_SECONDS,
        ws="none",
    )


def announce(address: Address) -> str:
    """The address for the person who started it; a token only the time it is made."""
    if address.token and not address.token_is_new:
        return f"dashboard: {address.base}?token=<.ai-employee/dashboard-token>"
    return f"dashboard: {address.url}"


def serve(config: Config, host: str, port: int, *, print_line: Callable[[str], None]) -> int:
    """`ai-employee dashboard`: serve until SIGINT/SIGTERM; exit 0."""
    sock, guard, address = prepare(config, host, port)
    app = create_app(config, guard, on_started=lambda: print_line(announce(address)))
    server = _Server(_uvicorn(app), app.state.live)
    try:
        asyncio.run(server.serve(sockets=[sock]))
    finally:
        sock.close()
    if not server.started:
        raise DashboardError("dashboard: the server did not start (see the log)")
    return 0


@dataclass
class Running:
    """A page served from a thread; `stop` ends it and waits."""

    server: _Server
    thread: threading.Thread
    address: Address

    def stop(self, timeout: float = SHUTDOWN_SECONDS + 5) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)


def serve_in_thread(
    config: Config, host: str, port: int, *, print_line: Callable[[str], None]
) -> Running:
    """`run --dashboard`: the page in a thread of its own (its event loop owns the view)."""
    sock, guard, address = prepare(config, host, port)
    app = create_app(config, guard)
    server = _Server(_uvicorn(app), app.state.live)

    def main() -> None:
        try:
            asyncio.run(server.serve(sockets=[sock]))
        except Exception:
            log.exception("the dashboard stopped", action_type="dashboard")
        finally:
            sock.close()
            server.ready.set()

    thread = threading.Thread(target=main, name="dashboard", daemon=True)
    thread.start()
    server.ready.wait(60)
    if not server.started:
        thread.join(5)
        raise DashboardError(f"dashboard: could not start on {host}:{port} (see the log)")
    print_line(announce(address))
    return Running(server, thread, address)
