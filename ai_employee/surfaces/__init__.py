"""What a person uses: the command line, the web page, status, doctor.

The command line (cli), the commands that edit the vault (commands), `status` (inventory),
`doctor`, the web page (web/), and the docs' tables generated from the code (docgen).

May import every layer.
"""

MAY_IMPORT: tuple[str, ...] = (
    "base",
    "notes",
    "watching",
    "running",
    "telling",
    "deciding",
    "daemon",
)
"""The layers this one may import (tests/test_layers.py checks every module's imports)."""
