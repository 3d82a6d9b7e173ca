"""One note at a time, brought in line with the lifecycle table.

A look at a path: read it, give it its task (whose), decide, take the step, remember
(reconcile, steps); plans (planner); Inbox/Drop (intake); what a run's end means once the main
loop takes it (after_run). Runs in the main loop, but for a plan Claude writes (a thread of its
own per plan, which writes that plan's file and posts `PlanWritten`).

May import: base, notes, running (to offer a run; how an interrupted attempt ends), telling
(to tell a person).
"""

MAY_IMPORT: tuple[str, ...] = ("base", "notes", "running", "telling")
"""The layers this one may import (tests/test_layers.py checks every module's imports)."""
