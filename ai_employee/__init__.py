"""ai-employee: turns markdown task notes in an Obsidian vault into finished work by a coding agent.

The public API is what the CLI and the service use; see docs/ARCHITECTURE.md for the modules.
"""

from .base.config import Config, load_config
from .base.errors import AiEmployeeError, InvalidTransition, NoteRefused
from .notes.lifecycle import Priority, Status
from .notes.taskfile import OWNED_KEYS, TaskNote, edit_note_text, parse_note

__version__ = "0.1.0"

__all__ = [
    "OWNED_KEYS",
    "AiEmployeeError",
    "Config",
    "InvalidTransition",
    "NoteRefused",
    "Priority",
    "Status",
    "TaskNote",
    "__version__",
    "edit_note_text",
    "load_config",
    "parse_note",
]
