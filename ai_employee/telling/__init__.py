"""What the service tells a person while it runs: Dashboard.md, its model and its
rendering (dashboard_md), and the notification hooks with their thread (notify).

May import: base, notes, running.
"""

MAY_IMPORT: tuple[str, ...] = ("base", "notes", "running")
"""The layers this one may import (tests/test_layers.py checks every module's imports)."""
