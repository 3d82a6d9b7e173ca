"""Filesystem events to paths worth a look (its thread only posts messages).

What an event says (hints), where events come from (watchsources: inotify, or watchdog's
observers), one watch per folder (watcher), when a path is due (settle). The reader thread
decides nothing: it posts hints, folder changes and overflows to the main loop.

May import: base, notes.
"""

MAY_IMPORT: tuple[str, ...] = ("base", "notes")
"""The layers this one may import (tests/test_layers.py checks every module's imports)."""
