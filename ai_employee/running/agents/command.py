"""`agent = "command"`: any command line, split like a shell would, placeholders per element."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...base import commandline
from ...base.errors import ConfigError
from .base import Outcome, OutcomeKind, RunSpec, RunState


class CommandAgent:
    """Runs `agent_command`; exit 0 is success, any other exit a transient failure."""

    name = "command"

    def __init__(self, command: str) -> None:
        try:  # config.load_config checked it already; this is for an agent made by hand
            self.template = commandline.split(command)
        except ValueError as err:
            raise ConfigError(f"agent_command = {command!r}: {err}") from err
        if not self.template:
            raise ConfigError(
                "agent_command = '' : agent = \"command\" needs a command line, e.g. "
                'agent_command = "my-agent --prompt {prompt_file}"'
            )
        self.reads_prompt = any("{prompt_file}" in element for element in self.template)

    def argv(self, spec: RunSpec) -> list[str]:
        return commandline.substitute(
            self.template,
            commandline.values(spec.prompt_file, spec.note_path, spec.workdir, spec.task_id),
        )

    def stdin(self, spec: RunSpec) -> Path | None:
        return None

    def prompt_header(self, spec: RunSpec) -> str:
        return spec.handbook

    def on_line(self, line: str, state: RunState) -> dict[str, Any] | None:
        state.keep(line)
        return None

    def finish(self, exit_code: int, state: RunState) -> Outcome:
        tail = "\n".join(state.tail[-20:]).strip()
        if exit_code == 0:
            return Outcome(OutcomeKind.SUCCESS, result=tail or "(no output)", exit_code=0)
        last = state.tail[-1].strip() if state.tail else "no output"
        return Outcome(
            OutcomeKind.TRANSIENT,
            error=f"agent exited {exit_code}: {last[:200]}",
            result=tail,
            exit_code=exit_code,
        )

    def not_found(self, spec: RunSpec, error: OSError) -> Outcome:
        program = self.argv(spec)[0]
        return Outcome(
            OutcomeKind.PERMANENT,
            error=f"cannot start the agent {program!r}: {error.strerror or error}; "
            "fix agent_command in .ai-employee.toml",
        )
