"""What the service tells a person as it works: Dashboard.md and the hooks.

Dashboard.md's model and its rendering (dashboard_md), the notification hooks and their thread
(notify). Decisions tell through these; they decide nothing.

May import: base, notes, running.
"""

MAY_IMPORT: tuple[str, ...] = ("base", "notes", "running")
"""The layers this one may import (tests/test_layers.py checks every module's imports)."""
