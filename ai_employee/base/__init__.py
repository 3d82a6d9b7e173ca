"""The base every layer uses: configuration, errors, logs, files, processes.

The configuration table and its precedence (config), the one exception family (errors),
logging and reading the audit log (logs), durable file primitives (fsops), process groups
(processes), the contract's command lines (commandline).

Imports nothing of ai_employee outside this folder.
"""

MAY_IMPORT: tuple[str, ...] = ()
"""The layers this one may import (tests/test_layers.py checks every module's imports)."""
