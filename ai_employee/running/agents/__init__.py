"""Agent backends behind one small interface (`base.Agent`): the command line and Claude Code."""

from .base import Agent, Outcome, OutcomeKind, RunSpec, RunState
from .command import CommandAgent

__all__ = ["Agent", "CommandAgent", "Outcome", "OutcomeKind", "RunSpec", "RunState"]
