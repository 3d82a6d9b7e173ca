"""The service's life: the main loop and the messages it takes (mainloop, messages),
the process around it (service: the lock, signals, recovery, its threads), systemd's
notifications (sdnotify), the unit files (service_units) and the environment file (envfile).

May import every layer but surfaces: base, notes, watching, running, telling, deciding.
"""

MAY_IMPORT: tuple[str, ...] = ("base", "notes", "watching", "running", "telling", "deciding")
"""The layers this one may import (tests/test_layers.py checks every module's imports)."""
