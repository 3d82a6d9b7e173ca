"""The service's life: the main loop, the process around it, systemd.

The main loop and the messages it takes (mainloop, messages), a usage limit's pause (pauses),
the stop (shutdown), the process (service: signals, recovery, its threads; lock: one per vault),
systemd's notifications (sdnotify), the unit files (service_units) and the environment file
(envfile).

May import every layer but surfaces: base, notes, watching, running, telling, deciding.
"""

MAY_IMPORT: tuple[str, ...] = ("base", "notes", "watching", "running", "telling", "deciding")
"""The layers this one may import (tests/test_layers.py checks every module's imports)."""
