"""Filesystem events to paths worth a look: what an event says (hints), where events
come from (watchsources: inotify, or watchdog's observers), one watch per folder (watcher), when
a path is due (settle). Its reader thread decides nothing: it posts messages to the main loop.

May import: base, notes.
"""

MAY_IMPORT: tuple[str, ...] = ("base", "notes")
"""The layers this one may import (tests/test_layers.py checks every module's imports)."""
