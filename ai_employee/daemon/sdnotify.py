"""The sd_notify protocol: one datagram per message to $NOTIFY_SOCKET (systemd Type=notify).

A leading '@' in the socket path means Linux's abstract namespace. Without NOTIFY_SOCKET (not
started by systemd) every call is a no-op.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping

PINGS_PER_WATCHDOG = 3
"""WATCHDOG=1 is sent this many times per WatchdogSec: two pings may be lost before a restart."""


class Notifier:
    """READY=1 after the first reconcile, WATCHDOG=1 from the pinger, STOPPING=1 at the end."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.address = env.get("NOTIFY_SOCKET", "")
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        watched = usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid()))
        self.watchdog_seconds: float | None = int(usec) / 1e6 if watched else None
        """systemd's WatchdogSec for this process, or None when no watchdog is set."""

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def send(self, message: str) -> bool:
        if not self.address:
            return False
        address = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            try:
                sock.connect(address)
                sock.sendall(message.encode())
            except OSError:
                return False
        return True

    def ready(self, status: str = "") -> bool:
        return self.send("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def stopping(self) -> bool:
        return self.send("STOPPING=1")


def loop_alive(now: float, last_beat: float, waiting: bool, limit: float) -> bool:
    """Whether the main loop counts as alive: blocked waiting for its next event, or it made
    progress (a beat) within `limit` seconds. A step stuck for longer is not alive."""
    return waiting or now - last_beat <= limit


class WatchdogPinger:
    """WATCHDOG=1 every WatchdogSec/3 from a thread of its own, while the main loop is alive.

    The ping does not wait for the end of a loop turn, so a long turn that keeps making progress
    (a burst, a full reconcile) is not mistaken for a hang; a step stuck for two thirds of
    WatchdogSec stops the pings, and systemd restarts the service. The main loop calls `beat()`
    and `waiting()`; the pinger's thread only reads the two fields they set.
    """

    def __init__(
        self,
        notifier: Notifier,
        watchdog_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.notifier = notifier
        self.interval = watchdog_seconds / PINGS_PER_WATCHDOG
        self.limit = watchdog_seconds * 2 / 3
        self.clock = clock
        self.pings = 0
        self.checks = 0
        """How often the pinger looked at the loop, and how often it found it alive and pinged."""
        self._last_beat = clock()
        self._waiting = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="watchdog-pinger", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def beat(self) -> None:
        """Main loop: it made progress."""
        self._last_beat = self.clock()

    @contextlib.contextmanager
    def waiting(self) -> Iterator[None]:
        """Main loop: it blocks for its next event (healthy, however long it takes)."""
        self._waiting = True
        try:
            yield
        finally:
            self._last_beat = self.clock()
            self._waiting = False

    def _run(self) -> None:
        while True:
            if loop_alive(self.clock(), self._last_beat, self._waiting, self.limit):
                self.notifier.watchdog()
                self.pings += 1
            self.checks += 1
            if self._stop.wait(self.interval):
                return
