"""Runs of agents: queued, started, followed, checked, ended.

The queue (scheduler) and the one place "running" is held (coordinator), the daily budget and a
usage limit's pause, one run in its thread (executor) with its rounds, its check (verify), its
prompt and its agent process (agentproc), how a run ends (run_end, pure), the journal of live
agents (runrecords), what a run tells the main loop (run_messages), and the agents behind one
interface (agents/). It knows nothing of how a task came to be run.

May import: base, notes.
"""

MAY_IMPORT: tuple[str, ...] = ("base", "notes")
"""The layers this one may import (tests/test_layers.py checks every module's imports)."""
