"""Shows dependencies and recurring tasks at work, printed for a person to read.

    .venv/bin/python scripts/show_after_and_every.py

A chain A -> B -> C whose middle fails once; a cycle of three; a missing dependency released when
it appears; a series `every: 1m` across a stop of five periods, and a restart right after;
`overlap: skip` with a slow agent. The real service (in a thread), real inotify, the tests' fake
agent; the series run on a clock moved by hand (the service reads time only through it). Each
of these is also asserted by tests/test_dependencies.py and tests/test_recurring.py.
"""

import json
import os
import shutil
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from ai_employee.notes.vault import Folder, Vault, init_vault  # noqa: E402
from tests.helpers import wait_for  # noqa: E402
from tests.service_harness import drop, events, note, running_service, svc_config, wait_status  # noqa: E402

FAKE = str(ROOT / "tests" / "fake_agent.py")
base = Path(os.environ.get("TMPDIR", "/tmp")) / "ai-employee-show"
shutil.rmtree(base, ignore_errors=True)
base.mkdir(parents=True)


def fresh(name):
    root = base / name / "vault"
    init_vault(root, base / name / "apps")
    return Vault(root)


def cfg(vault, **kw):
    return svc_config(
        vault,
        agent="command",
        agent_command=f"{sys.executable} {FAKE} {{task_id}} {{workdir}} {{prompt_file}}",
        retry_initial_seconds=0,
        retry_max_seconds=0,
        **{"max_parallel": 4, **kw},
    )


def task(title, after="", behave="ok"):
    a = f"after: {after}\n" if after else ""
    return f"---\ntitle: {title}\ntype: claude_app\n{a}---\nbehave: {behave}\n"


# 1. chain
v = fresh("chain")
ledger = base / "chain" / "ledger"
ledger.touch()
os.environ["FAKE_LEDGER"] = str(ledger)
tmp = base / "chain"
with running_service(cfg(v)):
    drop(v, tmp, "C.md", task("C", '"[[B]]"'))
    drop(v, tmp, "B.md", task("B", "A", "fail-once"))
    drop(v, tmp, "A.md", task("A", behave="sleep 0.3"))
    for n in "ABC":
        wait_status(v.folder(Folder.DONE) / f"{n}.md", "done", 20)
ids = {note(v.folder(Folder.DONE) / f"{n}.md").task_id: n for n in "ABC"}
lines = [line.split() for line in ledger.read_text().splitlines()]
t0 = int(lines[0][3])
print(
    "1. chain A -> B -> C (B's first run fails), max_parallel 4: "
    "agent start/end, ms after A's start"
)
for task_id, ev, _pid, ns in lines:
    print(f"   {ids[task_id]} {ev:<5} {(int(ns) - t0) / 1e6:8.1f}")
for n in "BC":
    m = note(v.folder(Folder.DONE) / f"{n}.md").meta
    print(f"   {n}: attempts {m['attempts']}, after_ids {json.dumps(m['after_ids'])}")

# 2. cycle
v = fresh("cycle")
tmp = base / "cycle"
ledger = tmp / "ledger"
ledger.touch()
os.environ["FAKE_LEDGER"] = str(ledger)
na = v.folder(Folder.NEEDS_ACTION)
with running_service(cfg(v)):
    drop(v, tmp, "X.md", task("X", "Z"))
    drop(v, tmp, "Y.md", task("Y", "X"))
    drop(v, tmp, "Z.md", task("Z", "Y"))
    for n in "XYZ":
        wait_for(lambda n=n: "cycle" in str(note(na / f"{n}.md").meta.get("waiting_for")), 10, n)
    print(
        "\n2. a cycle of three: each note's waiting_for (nothing ran: ledger lines",
        len(ledger.read_text().splitlines()),
        ")",
    )
    for n in "XYZ":
        print(f"   {n}.md: {note(na / f'{n}.md').meta['waiting_for']}")
    dash = v.dashboard
    wait_for(lambda: dash.read_text().count("refused: a cycle") == 3, 10, "dash")
    print("   Dashboard.md, Needs attention:")
    for line in dash.read_text().split("## Needs attention")[1].split("##")[0].strip().splitlines():
        print("     " + line)

# 3. missing
v = fresh("missing")
tmp = base / "missing"
ledger = tmp / "ledger"
ledger.touch()
os.environ["FAKE_LEDGER"] = str(ledger)
na = v.folder(Folder.NEEDS_ACTION)
with running_service(cfg(v)):
    drop(v, tmp, "Deploy.md", task("Deploy", '"[[Release notes]]"'))
    wait_for(lambda: note(na / "Deploy.md").meta.get("waiting_for"), 10, "w")
    print(
        "\n3. a missing dependency: Deploy.md says",
        repr(note(na / "Deploy.md").meta["waiting_for"]),
    )
    t = time.monotonic()
    drop(v, tmp, "Release notes.md", task("Release notes"))
    wait_status(v.folder(Folder.DONE) / "Deploy.md", "done", 20)
    print(
        f"   Release notes.md dropped -> Deploy done {(time.monotonic() - t) * 1000:.0f} ms "
        "later; after_ids",
        json.dumps(note(v.folder(Folder.DONE) / "Deploy.md").meta["after_ids"]),
    )


# 4. series across a stop
class Clock:
    def __init__(s):
        s.now = datetime(2026, 12, 7, 7, 0, tzinfo=UTC)

    def __call__(s):
        return s.now


v = fresh("series")
tmp = base / "series"
ledger = tmp / "ledger"
ledger.touch()
os.environ["FAKE_LEDGER"] = str(ledger)
clock = Clock()
rec = v.folder(Folder.RECURRING) / "Standup.md"
rec.write_text(
    "---\ntitle: Standup notes\nevery: 1m\ntype: claude_app\ntimezone: Europe/Berlin\n"
    "---\nbehave: ok\n"
)


def keys():
    m = note(rec).meta
    return {k: str(m.get(k)) for k in ("next_at", "last_occurrence", "last_skipped") if m.get(k)}


def occ():
    return sorted(
        p.relative_to(v.root).as_posix()
        for f in ("Needs_Action", "Done", "Failed", "Pending_Approval")
        for p in v.folder(Folder(f)).glob("Standup notes *.md")
    )


print("\n4. a series `every: 1m` (clock: the service's own, moved by hand)")
with running_service(cfg(v), now=clock):
    wait_for(lambda: note(rec).meta.get("next_at"), 10, "n")
print(f"   first start at {clock.now:%H:%M:%S} UTC: {keys()}, occurrences {occ()}")
clock.now += timedelta(minutes=5, seconds=30)
with running_service(cfg(v), now=clock):
    wait_for(lambda: occ() and all(p.startswith("Done/") for p in occ()), 20, "o")
print(f"   stopped, started again 5 min 30 s later: {keys()}, occurrences {occ()}")
print(f"   log: {[(e['event'], e.get('parameters')) for e in events(v, 'occurrences missed')]}")
with running_service(cfg(v), now=clock):
    wait_for(lambda: events(v, "service ready") and len(events(v, "service ready")) == 3, 10, "r")
print(
    f"   restarted right after: occurrences {occ()}, 'occurrence written' log lines: "
    f"{len(events(v, 'occurrence written'))}"
)

# 5. overlap skip
v = fresh("overlap")
tmp = base / "overlap"
ledger = tmp / "ledger"
ledger.touch()
os.environ["FAKE_LEDGER"] = str(ledger)
clock = Clock()
rec = v.folder(Folder.RECURRING) / "Standup.md"
gate = tmp / "gate"
rec.write_text(
    "---\ntitle: Standup notes\nevery: 1m\ntype: claude_app\ntimezone: Europe/Berlin\n"
    f"---\nbehave: gate {gate}\n"
)
print("\n5. overlap: skip, with a slow agent (it runs until a gate opens)")
with running_service(cfg(v), now=clock):
    wait_for(lambda: note(rec).meta.get("next_at"), 10, "n")
    clock.now += timedelta(minutes=1)
    drop(v, tmp, "nudge1.md", "")
    wait_for(lambda: occ(), 10, "o1")
    first = v.root / occ()[0]
    wait_status(first, "executing")
    print(f"   08:01 occurrence written and running: {occ()}")
    clock.now += timedelta(minutes=1)
    drop(v, tmp, "nudge2.md", "")
    wait_for(lambda: note(rec).meta.get("last_skipped"), 10, "s")
    print(f"   08:02 while it runs: {keys()}, occurrences {occ()}")
    print(f"   log: {events(v, 'occurrence skipped')[0]['result']}")
    gate.touch()
    wait_status(v.folder(Folder.DONE) / first.name, "done")
