"""A command agent for the containment tests: it starts a child in a session of its own that
ignores SIGTERM (as a dev server or Claude Code's Bash tool would outlive its parent), writes
the child's pid to <workdir>/child.pid, then `exit` (ends at once) or `sleep` (runs for ever).

    python containment_agent.py <workdir> exit|sleep
"""

import subprocess
import sys
import time
from pathlib import Path

CHILD = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"

workdir, then = Path(sys.argv[1]), sys.argv[2]
child = subprocess.Popen([sys.executable, "-c", CHILD], start_new_session=True)
(workdir / "child.pid").write_text(f"{child.pid}\n")
if then == "sleep":
    time.sleep(600)
