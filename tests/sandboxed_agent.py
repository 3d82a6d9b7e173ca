"""A command agent for the sandbox tests: it writes in its work dir, then tries to write
<outside>, to connect to 127.0.0.1:<port>, and writes what happened to <workdir>/tried.json.

    python sandboxed_agent.py <workdir> <outside> <port>
"""

import json
import socket
import sys
from pathlib import Path

workdir, outside, port = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
(workdir / "inside.txt").write_text("written inside\n")
tried = {}
try:
    outside.write_text("escaped\n")
    tried["outside"] = "written"
except OSError as err:
    tried["outside"] = err.strerror
try:
    socket.create_connection(("127.0.0.1", port), 2).close()
    tried["network"] = "connected"
except OSError as err:
    tried["network"] = err.strerror or str(err)
(workdir / "tried.json").write_text(json.dumps(tried))
