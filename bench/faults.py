"""The faults the service survives, injected from outside, and what each cost: one table.

    .venv/bin/python bench/faults.py [--quick] [--only NAME ...] [--seed N] [--json FILE]

Each fault runs the real service (`python -m ai_employee run`, or tests/faulty_service.py
where the fault is inside it) on a vault of its own, with the tests' fake agent
(tests/fake_agent.py) as the command agent, drops its tasks and injects the fault while they
are planned, queued and running; then waits until every task has ended and checks it:

  lost        a task whose note is not in Done/ (or Failed/, for the tasks meant to fail)
  run twice   a task whose runs overlapped, or that ran more often than its note counts
              attempts (a run interrupted by a crash is run again, as a new attempt: counted
              under "re-runs", not here)
  corrupted   a note that no longer parses, lost its title or the person's text (theirs and
              every edit they made), or a second note of one task
  recover     the median time from the fault's end (a restart, space back, SIGCONT...) to
              the next task done: how long work stood still because of it

Faults: service-kill (SIGKILL of the service at random moments, runs in flight, then a
restart), agent-kill (SIGKILL of running agents), inotify-overflow (SIGSTOP while thousands of
notes arrive, SIGCONT), full-disk and read-only (a tmpfs filled / bound read-only while runs
are in flight: needs root or `sudo -n`), clock-jump (the service's wall clock an hour ahead,
then back), stale-copy (git brings back the vault as it was before the tasks ran), person-edit
(a person's edit while a task is queued, running, just done), and with no --quick, a crash
(SIGKILL, and an I/O error) at every durable step of one task's life (tests/crash_steps.py).
`--quick` is the suite's short version (tests/test_faults.py): fewer tasks and injections.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ai_employee.base.diskspace import space_of  # noqa: E402
from ai_employee.notes.taskfile import parse_note  # noqa: E402
from ai_employee.notes.vault import TASK_FOLDERS, init_vault  # noqa: E402
from tests import crash_steps  # noqa: E402
from tests.crash_steps import until  # noqa: E402

FAKE = ROOT / "tests" / "fake_agent.py"
FAULTY = ROOT / "tests" / "faulty_service.py"
TITLE = re.compile(r"^title: (.+)$", re.M)


@dataclass
class Row:
    fault: str
    injected: int = 0
    tasks: int = 0
    done: int = 0
    failed_as_expected: int = 0
    lost: int = 0
    run_twice: int = 0
    reruns: int = 0
    corrupted: int = 0
    recover_s: list[float] = field(default_factory=list)
    seconds: float = 0.0
    said: str = ""

    @property
    def clean(self) -> bool:
        return not (self.lost or self.run_twice or self.corrupted)

    def cells(self) -> list[str]:
        recover = f"{statistics.median(self.recover_s):.2f} s" if self.recover_s else "-"
        return [
            self.fault,
            str(self.injected),
            str(self.tasks),
            str(self.done),
            str(self.failed_as_expected),
            str(self.lost),
            str(self.run_twice),
            str(self.reruns),
            str(self.corrupted),
            recover,
            f"{self.seconds:.0f} s",
        ]


HEAD = [
    "fault",
    "injected",
    "tasks",
    "done",
    "failed as expected",
    "lost",
    "run twice",
    "re-runs",
    "corrupted",
    "recover (median)",
    "took",
]


def as_root(*argv: str) -> list[str]:
    return list(argv) if os.geteuid() == 0 else ["sudo", "-n", *argv]


class Rig:
    """A vault, its tasks, and the service on it as a child process."""

    def __init__(
        self,
        base: Path,
        name: str,
        faulty: bool = False,
        extra_env: dict[str, str] | None = None,
        **config: object,
    ) -> None:
        self.dir = base / name
        self.dir.mkdir(parents=True)
        self.root, self.apps = self.dir / "vault", self.dir / "apps"
        init_vault(self.root, self.apps)
        self.ledger = self.dir / "ledger"
        self.ledger.touch()
        self.faulty = faulty
        self.env = {
            **os.environ,
            "AI_EMPLOYEE_VAULT": str(self.root),
            "AI_EMPLOYEE_AGENT": "command",
            "AI_EMPLOYEE_AGENT_COMMAND": f"{sys.executable} {FAKE} {{task_id}} {{workdir}} "
            "{prompt_file}",
            "AI_EMPLOYEE_AGENT_ENV": "FAKE_*",
            "AI_EMPLOYEE_SETTLE_SECONDS": "0.05",
            "AI_EMPLOYEE_SWEEP_SECONDS": "2",
            "AI_EMPLOYEE_RETRY_INITIAL_SECONDS": "0",
            "AI_EMPLOYEE_RETRY_MAX_SECONDS": "0",
            "AI_EMPLOYEE_SHUTDOWN_GRACE_SECONDS": "0",
            "AI_EMPLOYEE_MAX_PARALLEL": "4",
            "AI_EMPLOYEE_MAX_ATTEMPTS": "10",
            "FAKE_LEDGER": str(self.ledger),
            "PYTHONPATH": str(ROOT),
            **{f"AI_EMPLOYEE_{k.upper()}": str(v) for k, v in config.items()},
            **(extra_env or {}),
        }
        self.tasks: dict[str, str] = {}
        """title -> the text the person wrote (and every edit they made since)."""
        self.meant_to_fail: set[str] = set()
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[str] = []

    # --- the service ------------------------------------------------------------------------

    def start(self) -> None:
        program = [str(FAULTY)] if self.faulty else ["-m", "ai_employee"]
        self.proc = subprocess.Popen(
            [sys.executable, *program, "run"],
            env=self.env,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        ready = threading.Event()
        threading.Thread(target=self._read, args=(self.proc, ready), daemon=True).start()
        if not ready.wait(60):
            raise RuntimeError(f"{self.dir.name}: the service did not become ready")

    def _read(self, proc: subprocess.Popen[str], ready: threading.Event) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            self.lines.append(line)
            if '"service ready"' in line:
                ready.set()
        ready.set()

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        if sig == signal.SIGKILL:
            self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    # --- tasks ------------------------------------------------------------------------------

    def drop(self, title: str, behave: str, folder: str = "Needs_Action") -> Path:
        slug = title.lower().replace(" ", "-")
        text = (
            f"---\ntitle: {title}\ntype: claude_app\nlanguage: py\napp: {slug}\n---\n"
            f"behave: {behave}\nA person's words for {title}.\n"
        )
        self.tasks[title] = text
        if behave == "fail":
            self.meant_to_fail.add(title)
        staged = self.dir / f"staged-{slug}.md"
        staged.write_text(text)
        target = self.root / folder / f"{title}.md"
        staged.rename(target)
        return target

    def ended(self) -> int:
        return sum(1 for f in ("Done", "Failed") for _ in (self.root / f).glob("*.md"))

    def done_now(self) -> int:
        return sum(1 for _ in (self.root / "Done").glob("*.md"))

    def wait_all(self, timeout: float) -> bool:
        return until(lambda: self.ended() >= len(self.tasks), timeout)

    def recovered(self, row: Row, began: float, timeout: float = 60.0) -> None:
        """Time from `began` (the fault's end) to the next task done (nothing left: none)."""
        before = self.done_now()
        if self.ended() >= len(self.tasks):
            return
        if until(lambda: self.done_now() > before or self.ended() >= len(self.tasks), timeout):
            row.recover_s.append(time.monotonic() - began)

    def live_agents(self) -> list[int]:
        live: dict[int, str] = {}
        for line in self.ledger.read_text().splitlines():
            task_id, event, pid = line.split()[:3]
            if event == "start":
                live[int(pid)] = task_id
            else:
                live.pop(int(pid), None)
        return [pid for pid in live if _alive(pid)]

    # --- the verdict ------------------------------------------------------------------------

    def judge(self, row: Row) -> None:
        """Every task's end, runs and note, into the row's counts."""
        notes: dict[str, list[tuple[str, str]]] = {}
        for folder in TASK_FOLDERS:
            for path in (self.root / folder.value).glob("*.md"):
                text = path.read_text(errors="replace")
                title = TITLE.search(text)
                notes.setdefault(title.group(1) if title else path.name, []).append(
                    (folder.value, text)
                )
        starts, overlapped = self._runs()
        row.tasks += len(self.tasks)
        for title, written in self.tasks.items():
            found = notes.get(title, [])
            want = "Failed" if title in self.meant_to_fail else "Done"
            ends = [(folder, text) for folder, text in found if folder == want]
            if not ends:
                row.lost += 1
                row.said += f"{title}: lost (found in {[f for f, _ in found] or 'no folder'}). "
                continue
            if len(found) > 1:
                row.corrupted += 1  # a second note of one task
                row.said += f"{title}: {len(found)} notes ({[f for f, _ in found]}). "
            text = ends[0][1]
            row.done += want == "Done"
            row.failed_as_expected += want == "Failed"
            try:
                note = parse_note(text, f"{title}.md")
            except ValueError as err:
                row.corrupted += 1
                row.said += f"{title}: does not parse ({err}). "
                continue
            if not _keeps(written, text):
                row.corrupted += 1
                missing = [line for line in _lines(written) if line not in text.splitlines()]
                row.said += f"{title}: the person's lines missing: {missing}. "
            runs = starts.get(note.task_id or "", 0)
            if note.task_id in overlapped or runs > note.attempts:
                row.run_twice += 1
                row.said += f"{title}: {runs} runs for {note.attempts} attempts. "
            row.reruns += max(0, runs - 1) if want == "Done" else 0

    def _runs(self) -> tuple[dict[str, int], set[str]]:
        starts: dict[str, int] = {}
        live: dict[str, int] = {}
        overlapped: set[str] = set()
        for line in self.ledger.read_text().splitlines():
            task_id, event, pid = line.split()[:3]
            if event == "start":
                starts[task_id] = starts.get(task_id, 0) + 1
                if task_id in live and _alive(live[task_id]):
                    overlapped.add(task_id)
                live[task_id] = int(pid)
            elif live.get(task_id) == int(pid):
                del live[task_id]
        return starts, overlapped


def _keeps(written: str, now: str) -> bool:
    """The person's text is all there: their front matter lines and every body line."""
    return all(line in now.splitlines() for line in _lines(written))


def _lines(written: str) -> list[str]:
    head, _, body = written.partition("\n---\n")
    return [line for line in head.splitlines()[1:] + body.splitlines() if line]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


@contextmanager
def rig(base: Path, row: Row, name: str, **kw: object) -> Iterator[Rig]:
    began = time.monotonic()
    r = Rig(base, name, **kw)
    r.start()
    try:
        yield r
        if not r.wait_all(120):
            row.said += f"{len(r.tasks) - r.ended()} task(s) never ended. "
    finally:
        r.stop()
        r.judge(row)
        row.seconds += time.monotonic() - began


# --- the faults -----------------------------------------------------------------------------


def service_kill(base: Path, size: Sizes, rnd: random.Random) -> Row:
    row = Row("SIGKILL of the service, runs in flight")
    with rig(base, row, "service-kill") as r:
        for i in range(size.tasks):
            r.drop(f"Kill {i}", "fail" if i % 6 == 5 else f"sleep {rnd.uniform(0.3, 1.2):.2f}")
        for _ in range(size.injections):
            if r.ended() >= len(r.tasks):
                break
            time.sleep(rnd.uniform(0.05, 0.8))
            r.signal(signal.SIGKILL)
            row.injected += 1
            began = time.monotonic()
            r.start()
            r.recovered(row, began)
    return row


def agent_kill(base: Path, size: Sizes, rnd: random.Random) -> Row:
    row = Row("SIGKILL of running agents")
    with rig(base, row, "agent-kill") as r:
        for i in range(size.tasks):
            r.drop(f"Agent {i}", f"sleep {rnd.uniform(0.3, 0.8):.2f}")
        while row.injected < size.injections and r.ended() < len(r.tasks):
            live = r.live_agents()
            if not live:
                time.sleep(0.05)
                continue
            time.sleep(rnd.uniform(0.0, 0.2))
            try:
                os.kill(rnd.choice(live), signal.SIGKILL)
            except ProcessLookupError:
                continue
            row.injected += 1
            r.recovered(row, time.monotonic())
    return row


def inotify_overflow(base: Path, size: Sizes, rnd: random.Random) -> Row:
    row = Row("SIGSTOP until inotify overflows")
    queued = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    drafts = queued // 2 + 1000  # each note written in place is 2+ events: create, close
    with rig(base, row, "overflow", max_parallel=2) as r:
        for i in range(size.tasks // 2):
            r.drop(f"Before {i}", "sleep 0.1")
        for _ in range(min(size.injections, 3)):  # each stop leaves its drafts: rescans grow
            r.signal(signal.SIGSTOP)
            folder = r.root / "Needs_Action"
            for j in range(drafts):
                (folder / f"draft {row.injected}-{j}.md").write_text(
                    f"---\ntitle: Draft {j}\nstatus: draft\n---\nleft alone\n"
                )
            for i in range(size.tasks // 2):
                r.drop(f"During {row.injected}-{i}", "sleep 0.05")
            r.signal(signal.SIGCONT)
            row.injected += 1
            r.recovered(row, time.monotonic())
        if not any("rescan after event-queue overflow" in line for line in r.lines):
            row.said += "no overflow happened. "
        untouched = all(
            p.read_text().endswith("status: draft\n---\nleft alone\n")
            for p in (r.root / "Needs_Action").glob("draft *.md")
        )
        row.corrupted += 0 if untouched else 1
        row.said += f"{drafts} drafts per stop (max_queued_events {queued}), left as written. "
    return row


class Tmpfs:
    def __init__(self, where: Path, size: str = "128m") -> None:
        self.root = where
        where.mkdir()
        argv = as_root("mount", "-t", "tmpfs", "-o", f"size={size},mode=0777", "tmpfs", str(where))
        subprocess.run(argv, check=True, capture_output=True)

    def fill(self) -> None:
        """Every byte taken (the filler grows until ENOSPC; it may be full already)."""
        try:
            fd = os.open(self.root / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError:
            return
        try:
            while True:
                os.write(fd, b"\0" * 65536)
        except OSError:
            pass
        finally:
            os.close(fd)

    def free(self) -> None:
        (self.root / "filler").unlink(missing_ok=True)

    def read_only(self) -> None:
        """A bind of the disk over itself, remounted read-only. A file opened for writing in
        the moment between the two makes the remount busy: tried again while it is."""
        subprocess.run(as_root("mount", "--bind", str(self.root), str(self.root)), check=True)
        argv = as_root("mount", "-o", "remount,bind,ro", str(self.root))
        until(lambda: subprocess.run(argv, capture_output=True).returncode == 0, 10)
        space = space_of(self.root)
        if space is None or not space.read_only:
            raise RuntimeError(f"{self.root}: the remount read-only stayed busy for 10 s")

    def writable(self) -> None:
        subprocess.run(as_root("umount", str(self.root)), check=True)

    def unmount(self) -> None:
        for _ in range(2):
            subprocess.run(
                as_root("umount", "-l", str(self.root)), check=False, capture_output=True
            )


def _disk(base: Path, size: Sizes, rnd: random.Random, read_only: bool) -> Row:
    name = "read-only" if read_only else "full-disk"
    row = Row(
        "vault's disk remounted read-only, runs in flight"
        if read_only
        else "vault's disk full, runs in flight"
    )
    disk = Tmpfs(base / f"{name}-disk")
    try:
        with rig(disk.root, row, name, max_parallel=2) as r:
            for i in range(size.tasks):
                r.drop(f"Disk {i}", f"sleep {rnd.uniform(0.1, 0.4):.2f}")
            for _ in range(size.injections):
                if r.ended() >= len(r.tasks):
                    break
                time.sleep(rnd.uniform(0.1, 0.6))
                disk.read_only() if read_only else disk.fill()
                row.injected += 1
                time.sleep(2.0)
                disk.writable() if read_only else disk.free()
                r.recovered(row, time.monotonic())
            said = sum('"cannot write to the vault"' in line for line in r.lines)
            row.said += f'"cannot write to the vault" logged {said} time(s) for {row.injected}. '
    finally:
        disk.unmount()
    return row


def full_disk(base: Path, size: Sizes, rnd: random.Random) -> Row:
    return _disk(base, size, rnd, read_only=False)


def read_only(base: Path, size: Sizes, rnd: random.Random) -> Row:
    return _disk(base, size, rnd, read_only=True)


def clock_jump(base: Path, size: Sizes, rnd: random.Random) -> Row:
    """Retries scheduled by the wall clock (`size.retry` s ahead), then the clock an hour
    ahead (they are due at once), then back by `size.jump_back` s (they wait that much longer:
    the times are wall times, written in the notes, so a person reads them)."""
    row = Row("wall clock jumps (+1 h, then back)")
    offset = base / "clock-offset"
    offset.write_text("0")
    with rig(
        base,
        row,
        "clock",
        faulty=True,
        extra_env={"CLOCK_OFFSET_FILE": str(offset)},
        retry_initial_seconds=size.retry,
        retry_max_seconds=size.retry,
    ) as r:
        for jump in (3600, -size.jump_back):
            count = len(r.tasks)
            for i in range(size.tasks // 2):
                r.drop(f"Clock {count + i}", "fail-once")
            until(lambda: "next_attempt_at" in "".join(_texts(r)), 20)
            offset.write_text(str(float(offset.read_text()) + jump))
            row.injected += 1
            jumped = time.monotonic()
            if r.wait_all(size.jump_back + 30):
                row.recover_s.append(time.monotonic() - jumped)
        row.said += (
            f"retries {size.retry} s ahead: after +1 h they were all done in "
            f"{row.recover_s[0]:.1f} s, after -{size.jump_back} s in {row.recover_s[-1]:.1f} s. "
        )
    return row


def _texts(r: Rig) -> Iterator[str]:
    for path in (r.root / "Needs_Action").glob("*.md"):
        yield _text(path)


def _text(path: Path) -> str:
    """The note's text now ("" once it moved on: the service moves notes as it works)."""
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def stale_copy(base: Path, size: Sizes, rnd: random.Random) -> Row:
    """The vault is a git repository; after the tasks ran, `git checkout` brings back
    Needs_Action/ as it was when they were planned (a pull of an old clone, a revert)."""
    row = Row("git brings back notes from before their run")
    with rig(base, row, "stale", max_parallel=1) as r:
        git = ["git", "-C", str(r.root), "-c", "user.name=b", "-c", "user.email=b@b"]
        subprocess.run([*git, "init", "-q"], check=True)
        for i in range(size.tasks):
            r.drop(f"Stale {i}", "sleep 0.05")
        until(lambda: all("status: " in t for t in _texts(r)) or r.ended() >= len(r.tasks), 20)
        subprocess.run([*git, "add", "-A"], check=True)
        subprocess.run([*git, "commit", "-qm", "planned"], check=True)
        r.wait_all(120)
        for _ in range(size.injections):
            subprocess.run([*git, "checkout", "HEAD", "--", "Needs_Action"], check=True)
            row.injected += 1
            time.sleep(3)  # the service looks, holds or leaves each (a sweep included)
        back = list((r.root / "Needs_Action").glob("*.md"))
        held = list((r.root / "Pending_Approval").glob("*.md"))
        row.said += f"{len(back)} old copies left in Needs_Action/, {len(held)} held for a person. "
        for path in back + held:  # the copies are the person's to delete, not a task of theirs
            path.unlink()
    return row


def person_edit(base: Path, size: Sizes, rnd: random.Random) -> Row:
    """A person adds a line to a task's note while it waits for a slot, while it runs (the
    agent held at a gate), and just after it is done; saved as editors save (in place, and by
    rename)."""
    row = Row("a person's edit while queued, running, just done")
    with rig(base, row, "edit", max_parallel=1) as r:
        gate = r.dir / "gate"
        for round_ in range(size.injections):
            gate.unlink(missing_ok=True)
            running = r.drop(f"Running {round_}", f"gate {gate}")
            queued = r.drop(f"Queued {round_}", "sleep 0.05")
            until(lambda p=running: "status: executing" in _text(p), 20)
            until(lambda p=queued: "status: planned" in _text(p), 20)
            _edit(r, running, f"Running {round_}", rename=False)
            _edit(r, queued, f"Queued {round_}", rename=True)
            row.injected += 2
            gate.touch()
            done = r.root / "Done" / f"Queued {round_}.md"
            until(lambda d=done: d.exists(), 30)
            _edit(r, done, f"Queued {round_}", rename=True)
            row.injected += 1
    return row


def _edit(r: Rig, path: Path, title: str, rename: bool) -> None:
    text = path.read_text()
    added = f"A person's edit of {title} at {time.monotonic_ns()}.\n"
    if rename:
        staged = path.with_name(f".{path.name}.swp")
        staged.write_text(text + added)
        staged.rename(path)
    else:
        with open(path, "r+") as handle:
            handle.seek(0, os.SEEK_END)
            handle.write(added)
    r.tasks[title] += added


def durable_steps(base: Path, how: str) -> Row:
    words = "SIGKILL" if how == "kill" else "an I/O error"
    row = Row(f"{words} at every durable step of one task ({how})")
    began = time.monotonic()
    trace = crash_steps.steps_in_one_life(base / f"steps-{how}-clean")
    phase = crash_steps.phases(trace)
    with ThreadPoolExecutor(max(2, min(8, os.cpu_count() or 2))) as pool:
        lives = list(
            pool.map(lambda n: crash_steps.live(base / f"steps-{how}-{n}", n, how), sorted(phase))
        )
    for life in lives:
        row.injected += bool(life.crashed_at)
        row.tasks += 1
        ok_note = list(life.notes) == ["Done/Crash.md"]
        row.done += ok_note and not life.problems
        row.lost += not ok_note or bool(life.problems)
        row.run_twice += life.overlapped
        row.reruns += max(0, life.starts - 1)
        row.corrupted += ok_note and "\nbehave: ok\n" not in life.notes["Done/Crash.md"]
        row.recover_s.append(life.seconds)
    per_phase = {p: sum(1 for n in phase.values() if n == p) for p in dict.fromkeys(phase.values())}
    row.said += "steps per part: " + ", ".join(f"{p} {n}" for p, n in per_phase.items()) + ". "
    again = "restart, " if how == "kill" else ""
    row.said += f"recover: a whole life (drop, crash, {again}done). "
    row.seconds = time.monotonic() - began
    return row


@dataclass(frozen=True)
class Sizes:
    tasks: int
    injections: int
    jump_back: int
    """Seconds the clock goes back (retries wait that much longer)."""
    retry: int
    """Seconds a retry waits (clock-jump)."""


FAULTS: dict[str, Callable[[Path, Sizes, random.Random], Row]] = {
    "service-kill": service_kill,
    "agent-kill": agent_kill,
    "inotify-overflow": inotify_overflow,
    "full-disk": full_disk,
    "read-only": read_only,
    "clock-jump": clock_jump,
    "stale-copy": stale_copy,
    "person-edit": person_edit,
}


def table(rows: list[Row]) -> str:
    out = ["| " + " | ".join(HEAD) + " |", "|" + "---|" * len(HEAD)]
    out += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    notes = [f"- {row.fault}: {row.said.strip()}" for row in rows if row.said]
    return "\n".join(out + (["", *notes] if notes else []))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the suite's short version")
    parser.add_argument("--only", nargs="*", choices=[*FAULTS, "durable-steps"])
    parser.add_argument("--seed", type=int, default=30)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    size = Sizes(8, 2, 4, 2) if args.quick else Sizes(40, 10, 60, 5)
    rnd = random.Random(args.seed)
    chosen = args.only or [*FAULTS, *([] if args.quick else ["durable-steps"])]
    began = time.monotonic()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="aie-faults-") as tmp:
        for name in chosen:
            if name == "durable-steps":
                rows += [durable_steps(Path(tmp), "kill"), durable_steps(Path(tmp), "raise")]
            else:
                rows.append(FAULTS[name](Path(tmp), size, rnd))
            print(f"  {rows[-1].fault}: {rows[-1].seconds:.0f} s", file=sys.stderr, flush=True)
    command = "bench/faults.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"$ .venv/bin/python {command.strip()}   (seed {args.seed}, {os.cpu_count()} CPUs)")
    print(table(rows))
    print(f"\nall faults in {time.monotonic() - began:.0f} s")
    if args.json:
        args.json.write_text(json.dumps([asdict(row) for row in rows], indent=1))
    return 0 if all(row.clean for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
