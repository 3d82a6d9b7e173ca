"""The vault on disk: its folders, its notes, their statuses and their records.

The layout and safe paths (vault); the statuses and the table of what each folder and status
call for (lifecycle, pure); a note's text and the keys we own in it (taskfile, pure); notes
read, edited and moved without losing a person's save (notefile); whose note is this (identity,
pure); what the plans record of each task (records); what the main loop last saw of each note
(index). Every layer speaks this vocabulary, so it sits low.

May import: base.
"""

MAY_IMPORT: tuple[str, ...] = ("base",)
"""The layers this one may import (tests/test_layers.py checks every module's imports)."""
