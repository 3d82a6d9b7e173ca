"""Which agent backend runs a task: the configured one, or the one its type names."""

from __future__ import annotations

from ...base.config import Config
from .acp import AcpAgent
from .base import Agent
from .claude import ClaudeAgent
from .command import CommandAgent


def make_agent(config: Config, kind: str | None = None, acp_command: str | None = None) -> Agent:
    """The backend `kind` (else the configured `agent`); for `acp`, `acp_command` (else the
    configured one)."""
    kind = kind or config.agent
    if kind == "command":
        return CommandAgent(config.agent_command)
    if kind == "acp":
        return AcpAgent(config, acp_command)
    return ClaudeAgent(config)


def agent_of_type(config: Config, task_type: str) -> Agent:
    """The backend for tasks of this type (`[types.NAME] agent` and `acp_command`)."""
    per_type = config.for_type(task_type)
    kind = per_type.agent or ("acp" if per_type.acp_command is not None else None)
    return make_agent(config, kind, per_type.acp_command)
