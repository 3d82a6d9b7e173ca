"""One exception family: every error a person can cause has a class, a message and an exit code.

The CLI turns an `AiEmployeeError` into one line on stderr and its `exit_code`; any other exception
escaping to the CLI is a bug.
"""

from __future__ import annotations


class AiEmployeeError(Exception):
    """Base of every error we raise on purpose."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(AiEmployeeError):
    """A configuration key or value is wrong; the message names key, value and source."""

    exit_code = 2


class UsageError(AiEmployeeError):
    """The command line asks for something that cannot be done as asked."""

    exit_code = 2


class VaultError(AiEmployeeError):
    """The vault is missing, not a folder, or not writable."""

    exit_code = 3


class NoteRefused(AiEmployeeError):
    """A note we cannot trust. It is left untouched; `reason` says why, for a person."""

    exit_code = 4

    def __init__(self, reason: str, path: str = "") -> None:
        super().__init__(f"{path}: {reason}" if path else reason)
        self.reason = reason
        self.path = path


class TaskNotFound(AiEmployeeError):
    """No note matches the task_id, file name or path a person gave."""

    exit_code = 4


class InvalidTransition(AiEmployeeError):
    """A status change the lifecycle table does not allow."""

    exit_code = 5

    def __init__(self, old: object, new: object, task_id: str, hint: str = "") -> None:
        message = f"cannot go from {_name(old)} to {_name(new)} for {task_id!r}"
        super().__init__(f"{message} ({hint})" if hint else message)
        self.old = old
        self.new = new
        self.task_id = task_id


class LockHeld(AiEmployeeError):
    """Another service already runs on this vault."""

    exit_code = 6


class WriteConflict(AiEmployeeError):
    """A note kept changing under us; our edit was not applied (nothing was lost)."""

    exit_code = 7


class RunsFailed(AiEmployeeError):
    """`once`: a run it started did not succeed (failed, to be retried later, or interrupted)."""

    exit_code = 8


class DashboardError(AiEmployeeError):
    """The web page cannot be served as asked (the address is taken or cannot be bound)."""

    exit_code = 9


def _name(value: object) -> str:
    return str(getattr(value, "value", value))
