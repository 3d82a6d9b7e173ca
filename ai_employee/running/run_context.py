"""What every run needs from the service, given once: the vault, the configuration, the agent
(one per task type that names its own), the run journal, the clock, and the main loop's queue.
Immutable but for `by_type`, which run threads fill as they first need a type's agent."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from ..base.config import Config
from ..notes.notefile import NoteStore
from ..notes.vault import Vault
from .agents.base import Agent
from .agents.choose import agent_of_type
from .run_messages import PostRun
from .runrecords import RunJournal


@dataclass(frozen=True)
class RunContext:
    """What every run needs from the service, given once."""

    vault: Vault
    config: Config
    agent: Agent
    """The configured agent; a type that names another (`[types.NAME] agent`) gets its own."""
    journal: RunJournal
    now: Callable[[], datetime]
    post: PostRun
    by_type: dict[str, Agent] = field(default_factory=dict)

    @property
    def notes(self) -> NoteStore:
        return NoteStore(self.vault.root, self.vault.tmp, self.config.max_note_bytes)

    def agent_for(self, task_type: str) -> Agent:
        """The agent that runs tasks of this type (made once per type; run threads may ask at
        once: the worst a race costs is a second, equal agent)."""
        per_type = self.config.for_type(task_type)
        if per_type.agent is None and per_type.acp_command is None:
            return self.agent
        if task_type not in self.by_type:
            self.by_type[task_type] = agent_of_type(self.config, task_type)
        return self.by_type[task_type]
