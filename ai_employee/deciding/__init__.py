"""One note at a time, brought in line with the lifecycle table: read it, give it
its task, decide, take the step, remember (reconcile, whose, steps); plans (planner); Inbox/Drop
(intake). Runs only in the main loop.

May import: base, notes, running (to offer a run; how an interrupted attempt ends), telling
(to tell a person).
"""

MAY_IMPORT: tuple[str, ...] = ("base", "notes", "running", "telling")
"""The layers this one may import (tests/test_layers.py checks every module's imports)."""
