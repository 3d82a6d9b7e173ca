"""The page live, for real: uvicorn on 127.0.0.1, the real service running a real agent
process, the vault's own inotify events, and server-sent events read off the socket."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from ai_employee.base.config import Config
from ai_employee.notes.vault import Folder, Vault
from ai_employee.surfaces.web import Running, serve_in_thread

from .helpers import wait_for
from .service_harness import running_service, svc_config


class Stream:
    """A reader of one SSE stream in a thread; events land on a queue (kind, data)."""

    def __init__(self, url: str) -> None:
        self.events: queue.Queue[tuple[str, str]] = queue.Queue()
        self.ended = threading.Event()
        self._client = httpx2.Client(timeout=httpx2.Timeout(30, read=60))
        self._thread = threading.Thread(target=self._read, args=(url,), daemon=True)
        self._thread.start()

    def _read(self, url: str) -> None:
        kind, data = "message", []
        try:
            with self._client.stream("GET", url) as response:
                for line in response.iter_lines():
                    if line.startswith("event: "):
                        kind = line[7:]
                    elif line.startswith("data: "):
                        data.append(line[6:])
                    elif line == "":
                        if data or kind != "message":
                            self.events.put((kind, "\n".join(data)))
                        kind, data = "message", []
        except httpx2.HTTPError:
            pass
        finally:
            self.ended.set()

    def wait(self, kind: str, contains: str = "", timeout: float = 20) -> str:
        """The data of the next event of `kind` whose data holds `contains` (others skipped)."""
        return self.wait_all([(kind, contains)], timeout)[0]

    def wait_all(self, wanted: list[tuple[str, str]], timeout: float = 20) -> list[str]:
        """The data of an event for each (kind, contains), in whatever order they come (the
        paths of one write are taken together and their events published in no set order)."""
        found: dict[int, str] = {}
        deadline = threading.Event()
        timer = threading.Timer(timeout, deadline.set)
        timer.start()
        try:
            while not deadline.is_set() and len(found) < len(wanted):
                try:
                    got, data = self.events.get(timeout=0.1)
                except queue.Empty:
                    continue
                for i, (kind, contains) in enumerate(wanted):
                    if i not in found and got == kind and contains in data:
                        found[i] = data
                        break
            if len(found) < len(wanted):
                missing = [w for i, w in enumerate(wanted) if i not in found]
                raise AssertionError(f"no events {missing} within {timeout}s")
            return [found[i] for i in range(len(wanted))]
        finally:
            timer.cancel()

    def close(self) -> None:
        self._client.close()


@pytest.fixture
def page(config: Config) -> Iterator[Running]:
    running = serve_in_thread(config, "127.0.0.1", 0, print_line=lambda line: None)
    try:
        yield running
    finally:
        running.stop()


def url(running: Running, path: str) -> str:
    return f"http://127.0.0.1:{running.address.port}{path}"


def csrf(running: Running) -> str:
    page = httpx2.get(url(running, "/")).text
    match = re.search(r'name="csrf-token" content="([0-9a-f]+)"', page)
    assert match
    return match.group(1)


def board(running: Running) -> dict[str, Any]:
    return dict(httpx2.get(url(running, "/api/board")).json())


def column(running: Running, key: str) -> list[str]:
    return [c["title"] for c in board(running)["columns"][key]["cards"]]


AGENT = (
    "sh -c 'echo first-line; while [ ! -e {workdir}/go ]; do sleep 0.02; done; echo second-line'"
)
"""A command agent that says one line, waits for the test's word (a file), then another."""


def test_a_task_made_on_the_page_runs_and_its_output_streams_live(vault: Vault) -> None:
    config = svc_config(vault, agent_command=AGENT)
    with running_service(config):
        running = serve_in_thread(config, "127.0.0.1", 0, print_line=lambda line: None)
        try:
            status = httpx2.get(url(running, "/status")).json()
            assert status["running"] is True and status["pid"] == os.getpid()
            board_stream = Stream(url(running, "/events"))
            origin = {"origin": f"http://127.0.0.1:{running.address.port}"}
            form = {"csrf": csrf(running), "title": "Live one", "body": "Say two lines."}
            created = httpx2.post(url(running, "/new"), data=form, headers=origin)
            assert created.status_code == 303
            task_id = created.headers["location"].removeprefix("/task/")
            board_stream.wait("board")
            turns = Stream(url(running, f"/events?task={task_id}&offset=0"))
            first = json.loads(turns.wait("turns", "first-line"))
            assert "second-line" not in first["html"] and first["offset"] > 0
            assert column(running, "running") == ["Live one"]
            workdir = config.apps_dir / "tasks" / task_id
            (workdir / "go").touch()
            second, _ = turns.wait_all([("turns", "second-line"), ("task", task_id)])
            assert "first-line" not in json.loads(second)["html"]  # each line once
            wait_for(lambda: column(running, "done") == ["Live one"], what="the card in Done")
            page = httpx2.get(url(running, f"/task/{task_id}")).text
            assert "first-line" in page and "second-line" in page and "s-done" in page
            board_stream.close()
            turns.close()
        finally:
            running.stop()


def test_the_page_follows_edits_made_elsewhere(vault: Vault, page: Running) -> None:
    stream = Stream(url(page, "/events"))
    path = vault.folder(Folder.PENDING_APPROVAL) / "Ask.md"
    path.write_text("---\ntitle: Ask me\ntask_id: askaskas\nstatus: pending_approval\n---\n")
    assert stream.wait("board") == "1"  # the badge's count came with it
    assert column(page, "waiting") == ["Ask me"]
    os.rename(path, vault.folder(Folder.REJECTED) / "Ask.md")  # as a person would in Obsidian
    assert stream.wait("board") == "0"
    wait_for(lambda: column(page, "waiting") == [], what="the card to leave")
    stream.close()


def test_a_stream_on_a_task_id_that_is_a_path_reads_nothing(vault: Vault, page: Running) -> None:
    secret = vault.root.parent / "secret.jsonl"
    secret.write_text(json.dumps({"kind": "out", "line": "SECRET"}) + "\n")
    stream = Stream(url(page, "/events?task=../../secret&offset=0"))
    (vault.transcripts / "x.jsonl").write_text("{}\n")
    (vault.folder(Folder.NEEDS_ACTION) / "N.md").write_text("---\ntitle: n\n---\n")
    stream.wait("board")
    seen = []
    while not stream.events.empty():
        seen.append(stream.events.get())
    assert all("SECRET" not in data for _, data in seen)
    stream.close()


def test_stopping_the_page_ends_its_open_streams(config: Config) -> None:
    running = serve_in_thread(config, "127.0.0.1", 0, print_line=lambda line: None)
    stream = Stream(url(running, "/events"))
    wait_for(lambda: running.server.live.subscribers, what="the stream to subscribe")
    running.stop()
    assert not running.thread.is_alive()
    assert stream.ended.wait(10)
    stream.close()


_started: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def _reap() -> Iterator[None]:
    """Every program a test starts is stopped and its pipe closed, whatever the test did."""
    yield
    while _started:
        proc = _started.pop()
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)
        if proc.stderr is not None:
            proc.stderr.close()


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ai_employee", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=(env or dict(os.environ)) | {"PYTHONUNBUFFERED": "1"},
    )
    _started.append(proc)
    return proc


def _announced(proc: subprocess.Popen[str]) -> str:
    assert proc.stderr is not None
    for line in proc.stderr:
        match = re.search(r"dashboard: (http://\S+)", line)
        if match:
            return match.group(1)
    raise AssertionError(f"no address announced; exit {proc.wait()}")


def test_run_dashboard_serves_the_page_from_the_service_and_stops_with_it(
    vault: Vault, tmp_path: Path
) -> None:
    env = dict(os.environ) | {
        "AI_EMPLOYEE_AGENT": "command",
        "AI_EMPLOYEE_AGENT_COMMAND": "sh -c 'echo built > out.txt'",
        "AI_EMPLOYEE_SETTLE_SECONDS": "0.1",
        "AI_EMPLOYEE_DASHBOARD_PORT": "0",
    }
    proc = _cli("run", "--dashboard", "--vault", str(vault.root), env=env)
    try:
        base = _announced(proc).rstrip("/")
        wait_for(lambda: httpx2.get(f"{base}/status").json()["running"], what="the lock held")
        page = httpx2.get(f"{base}/").text
        token = re.search(r'name="csrf-token" content="([0-9a-f]+)"', page)
        assert token
        created = httpx2.post(
            f"{base}/new",
            data={"csrf": token.group(1), "title": "From the page"},
            headers={"origin": base},
        )
        assert created.status_code == 303
        wait_for(
            lambda: (
                [
                    c["title"]
                    for c in httpx2.get(f"{base}/api/board").json()["columns"]["done"]["cards"]
                ]
                == ["From the page"]
            ),
            timeout=30,
            what="the task done",
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0


def test_dashboard_exits_0_on_a_signal_and_9_when_the_port_is_taken(vault: Vault) -> None:
    first = _cli("dashboard", "--vault", str(vault.root), "--port", "0")
    try:
        address = _announced(first)
        port = address.rstrip("/").rsplit(":", 1)[1]
        assert httpx2.get(address).status_code == 200
        second = _cli("dashboard", "--vault", str(vault.root), "--port", port)
        _, err = second.communicate(timeout=30)
        assert second.returncode == 9
        assert err.count("\n") == 1 and "cannot listen on 127.0.0.1:" in err
    finally:
        first.send_signal(signal.SIGINT)
        assert first.wait(30) == 0


def test_off_loopback_the_token_is_made_private_and_printed_once(vault: Vault) -> None:
    first = _cli("dashboard", "--vault", str(vault.root), "--host", "0.0.0.0", "--port", "0")
    try:
        address = _announced(first)
        token = (vault.machinery / "dashboard-token").read_text().strip()
        assert address.endswith(f"?token={token}")
        assert (vault.machinery / "dashboard-token").stat().st_mode & 0o777 == 0o600
        bare = address.split("?")[0]
        assert httpx2.get(bare).status_code == 401
        assert httpx2.get(bare, headers={"authorization": f"Bearer {token}"}).status_code == 200
    finally:
        first.send_signal(signal.SIGTERM)
        assert first.wait(30) == 0
    again = _cli("dashboard", "--vault", str(vault.root), "--host", "0.0.0.0", "--port", "0")
    try:
        assert token not in _announced(again)
    finally:
        again.send_signal(signal.SIGTERM)
        assert again.wait(30) == 0
