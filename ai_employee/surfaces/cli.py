"""The `ai-employee` command line: parse arguments, call the module that does the work, report.

No logic lives here. Errors become one line on stderr and a non-zero exit; a traceback is a bug.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO, cast

from .. import __version__
from ..base import diskspace, fsops
from ..base.config import CONFIG_FILE_NAME, Config, load_config
from ..base.errors import AiEmployeeError, RunsFailed
from ..base.logs import (
    JOURNAL_PRIORITIES,
    LOG_FILE_MAX_BYTES,
    CappedLogFile,
    ConsoleStyle,
    configure_logging,
    console_style,
    follow_entries,
    format_line,
    iter_log_entries,
    journal_lines,
    os_user,
)
from ..daemon import service_units
from ..daemon.envfile import read_env_file
from ..daemon.lock import Holder, held_by
from ..daemon.service import Service
from ..notes.vault import Vault, init_vault
from ..running.budget import DailyBudget
from ..running.usage_limit import load_pause
from . import commands, inventory
from .doctor import run_checks


def _parser() -> argparse.ArgumentParser:
    """The parser, built from `COMMANDS`: each command takes --vault, and the service's commands
    --env-file and --log-file too."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--vault",
        default=argparse.SUPPRESS,
        help="the vault folder (env AI_EMPLOYEE_VAULT, default ./vault)",
    )
    service_io = argparse.ArgumentParser(add_help=False)
    for option in SERVICE_IO:
        service_io.add_argument(*option.flags, **option.options)
    parser = argparse.ArgumentParser(
        prog="ai-employee",
        description="Turns markdown task notes in a vault into finished work by a coding agent.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"ai-employee {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        parents = [common, service_io] if command.service_io else [common]
        each = sub.add_parser(command.name, parents=parents, help=command.help)
        for option in command.options:
            each.add_argument(*option.flags, **option.options)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    fsops.quiet_lease_breaks()
    try:
        return _dispatch(args)
    except AiEmployeeError as err:
        line = f"ai-employee: error: {err}"
        if console_style(sys.stderr, os.environ) == "journal":  # `journalctl -p err` finds it
            line = journal_lines(line, JOURNAL_PRIORITIES["error"])
        print(line, file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `ai-employee logs | head`: the reader has all it wanted
        _stdout_to_devnull()
        return 0 if args.command not in ("run", "once") else 1  # a service must be restarted


def _stdout_to_devnull() -> None:
    """After a broken pipe, so that the flush at exit does not fail again (and exit 120)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _service_io(args: argparse.Namespace) -> TextIO | None:
    """`--log-file` and `--env-file`, before the configuration is read: an error in it lands in
    the log file, and the environment file's AI_EMPLOYEE_* keys count as configuration."""
    console = CappedLogFile(args.log_file) if getattr(args, "log_file", None) else None
    env_file = getattr(args, "env_file", None)
    if env_file is not None:
        os.environ.update(read_env_file(env_file.expanduser().absolute()))
    return cast(TextIO, console) if console is not None else None


def _load(args: argparse.Namespace) -> Config:
    flags = {
        "polling": getattr(args, "polling", None),
        "dashboard_host": getattr(args, "host", None),
        "dashboard_port": getattr(args, "port", None),
    }
    return load_config(getattr(args, "vault", None), env=os.environ, flags=flags)


@dataclass(frozen=True)
class Invocation:
    """One command as typed: its arguments, the configuration, the vault, the console."""

    args: argparse.Namespace
    config: Config
    vault: Vault
    console: TextIO | None
    """`--log-file`'s stream, for the service commands (None: stderr)."""

    @property
    def console_style(self) -> ConsoleStyle | None:
        return "plain" if self.console is not None else None


def _dispatch(args: argparse.Namespace) -> int:
    console = _service_io(args)
    config = _load(args)
    vault = Vault(config.vault)
    if args.command not in ("init", "doctor"):
        vault.require()
    return HANDLERS[args.command](Invocation(args, config, vault, console))


def _init(cmd: Invocation) -> int:
    configure_logging(None)
    apps = cmd.config.apps_dir
    created = init_vault(cmd.vault.root, apps)
    for path in created:
        why = ""
        if path == apps:
            where = "beside the vault" if apps.parent == cmd.vault.root.parent else "apps_dir"
            why = (
                f"  (where tasks build their work, {where}; "
                f"set apps_dir in {CONFIG_FILE_NAME} to move it)"
            )
        print(f"created {path}{why}")
    print(f"vault ready: {cmd.vault.root}" + ("" if created else " (nothing to create)"))
    return 0


def _doctor(cmd: Invocation) -> int:
    configure_logging(None, console_level=logging.WARNING)
    checks = run_checks(cmd.config, login_probe=not cmd.args.no_login_check)
    for check in checks:
        print(check.line())
    failed = sum(1 for c in checks if c.level == "fail")
    print(f"{failed} problem(s) block runs" if failed else "nothing blocks runs")
    return 1 if failed else 0


def _run(cmd: Invocation) -> int:
    configure_logging(
        cmd.vault.logs, console=cmd.console, style=cmd.console_style, console_level=logging.INFO
    )
    if not cmd.args.dashboard:
        return Service(cmd.config).run()
    from . import web  # the web parts load only when asked for

    config = cmd.config
    page = web.serve_in_thread(
        config, config.dashboard_host, config.dashboard_port, print_line=_say(cmd)
    )
    try:
        return Service(config).run()
    finally:
        page.stop()


def _dashboard(cmd: Invocation) -> int:
    configure_logging(cmd.vault.logs, console_level=logging.WARNING)
    from . import web

    config = cmd.config
    return web.serve(config, config.dashboard_host, config.dashboard_port, print_line=_say(cmd))


def _say(cmd: Invocation) -> Callable[[str], None]:
    """A line for the person who started the page (its address), on the service's console."""
    stream = cmd.console or sys.stderr

    def say(line: str) -> None:
        print(line, file=stream, flush=True)

    return say


def _once(cmd: Invocation) -> int:
    configure_logging(
        cmd.vault.logs, console=cmd.console, style=cmd.console_style, console_level=logging.WARNING
    )
    service = Service(cmd.config, once=True)
    code = service.run()
    tally = service.runs.tally
    if cmd.args.json:
        _print(
            {
                "ran": tally.started,
                "succeeded": tally.succeeded,
                "failed": tally.failed,
                "retry_later": tally.retrying,
                "cancelled": tally.cancelled,
                "interrupted": tally.interrupted,
                "queued": service.runs.scheduler.waiting(),
            }
        )
    else:
        _print(
            f"ran {tally.started}: {tally.succeeded} succeeded, {tally.failed} failed, "
            f"{tally.retrying} to retry later, {tally.cancelled} cancelled"
            + (f", {tally.interrupted} interrupted" if tally.interrupted else "")
        )
    # Whatever did not end done or cancelled, its note lost on the way included.
    unsuccessful = tally.started - tally.succeeded - tally.cancelled
    if code == 0 and unsuccessful:
        raise RunsFailed(
            f"{unsuccessful} of {tally.started} run(s) did not succeed "
            "(`ai-employee status` lists them, `ai-employee logs` says why)"
        )
    return code


def _status(cmd: Invocation) -> int:
    configure_logging(cmd.vault.logs, console_level=logging.WARNING)
    report = inventory.scan(cmd.vault, cmd.config.max_note_bytes)
    now = datetime.now(UTC)
    holder = held_by(cmd.vault)
    vault_flag = f"--vault {shlex.quote(str(cmd.vault.root))}"
    budget = DailyBudget.from_logs(cmd.vault.logs, cmd.config.daily_budget_usd, now)
    pause = load_pause(cmd.vault.machinery, now) if cmd.config.agent == "claude" else None
    disk = diskspace.troubles({"vault": cmd.vault.root, "apps_dir": cmd.config.apps_dir})
    if cmd.args.json:
        extra = {
            "service": {
                "running": holder is not None,
                "pid": holder.pid if holder else None,
                "since": holder.since.isoformat() if holder and holder.since else None,
            },
            "cost_today_usd": budget.spent_on(now),
            "daily_budget_usd": budget.limit_usd,
            "paused_until": pause.until.isoformat() if pause else None,
            "usage_limit": pause.limit if pause else None,
            "disk": [t.words for t in disk],
        }
        _print(report.as_json(cmd.vault.root, holder is not None) | extra)
    else:
        lines = [_service_line(holder, vault_flag), budget.status_line(now)]
        if pause is not None:
            lines.append(f"claude runs are {pause.says(now)}: nothing starts before then")
        lines += [f"disk: {t.words}; {t.fix} (work waits until then)" for t in disk]
        text = inventory.render_text(
            report, cmd.vault.root, *lines, service_running=holder is not None
        )
        _print(text)
    return 0


def _service_line(holder: Holder | None, vault_flag: str) -> str:
    if holder is None:
        return (
            "service: not running (nothing is planned or run until it starts: "
            f"`ai-employee {vault_flag} run`, or `ai-employee {vault_flag} service install`)"
        )
    pid = f" (pid {holder.pid})" if holder.pid is not None else ""
    since = f" since {holder.since:%Y-%m-%d %H:%M:%S %Z}" if holder.since else ""
    return f"service: running{pid}{since}"


def _add(cmd: Invocation) -> int:
    configure_logging(cmd.vault.logs, console_level=logging.WARNING)
    args = cmd.args
    body = sys.stdin.read() if args.body == "-" else (args.body or "")
    added = commands.add_task(
        cmd.vault,
        cmd.config,
        args.title,
        task_type=args.task_type,
        priority=args.priority,
        body=body,
        app=args.app,
        language=args.language,
        after=args.after or (),
        every=args.every,
        actor=os_user(),
    )
    if args.json:
        _print({"path": str(added.path), "task_id": added.task_id})
    elif added.task_id is None:
        _print(f"{added.path}\nseries: every {args.every} (each occurrence is a task)")
    else:
        _print(f"{added.path}\ntask_id: {added.task_id}")
    return 0


def _edit(cmd: Invocation) -> int:
    """approve, reject, retry, cancel: a person's act on one task, as a note edit or move."""
    configure_logging(cmd.vault.logs, console_level=logging.WARNING)
    command = getattr(commands, cmd.args.command)
    edited = command(cmd.vault, cmd.config, cmd.args.task, actor=os_user(), now=datetime.now(UTC))
    rel = edited.path.relative_to(cmd.vault.root)
    old = edited.old.value if edited.old else "new"
    if cmd.args.json:
        _print({"path": str(rel), "task_id": edited.task_id, "from": old, "to": edited.new})
    else:
        _print(f"{edited.task_id}: {old} -> {edited.new.value}  ({rel})")
    return 0


def _request_changes(cmd: Invocation) -> int:
    """request-changes: a comment under the note's `## Review`, and back to Needs_Action."""
    configure_logging(cmd.vault.logs, console_level=logging.WARNING)
    args = cmd.args
    edited = commands.request_changes(
        cmd.vault,
        cmd.config,
        args.task,
        args.message,
        actor=os_user(),
        now=datetime.now(UTC),
        at=args.at,
    )
    rel = edited.path.relative_to(cmd.vault.root)
    if args.json:
        _print({"path": str(rel), "task_id": edited.task_id, "requested": True})
    else:
        _print(f"{edited.task_id}: changes requested ({rel}); its agent runs again, told them")
    return 0


def _service(cmd: Invocation) -> int:
    configure_logging(cmd.vault.logs, console_level=logging.WARNING)
    args, config, vault = cmd.args, cmd.config, cmd.vault
    manager = args.manager or service_units.default_manager()
    plan = service_units.plan_install(config, Path.home())
    unit = service_units.render(plan, manager, Path.home())
    facts, warnings = service_units.notes(plan, manager)
    if args.print_only:  # stdout is the file itself (it parses as a unit or a plist)
        print(f"# {args.action} would write {unit.path}", file=sys.stderr)
        for line in [*facts, *warnings]:
            print(f"# {line}", file=sys.stderr)
        print(unit.text, end="")
        return 0
    if args.action == "install":
        _print("\n".join([*service_units.install(unit, plan), *facts]))
        for line in warnings:
            print(f"ai-employee: {line}", file=sys.stderr)
    elif args.action == "uninstall":
        _print("\n".join(service_units.uninstall(unit)))
    else:
        _print(service_units.manager_status(unit))
        report = inventory.scan(vault, config.max_note_bytes)
        _print(inventory.render_text(report, vault.root))
    return 0


def _logs(cmd: Invocation) -> int:
    configure_logging(cmd.vault.logs, console_level=logging.WARNING)
    args, logs_dir = cmd.args, cmd.vault.logs
    task = commands.task_id_of(cmd.vault, cmd.config, args.task) if args.task else None
    entries: Iterable[dict[str, Any]] = (
        follow_entries(logs_dir) if args.follow else iter_log_entries(logs_dir)
    )
    style: ConsoleStyle = "color" if console_style(sys.stdout, os.environ) == "color" else "plain"
    for entry in entries:
        if task is not None and entry.get("task_id") != task:
            continue
        shown = (
            json.dumps(entry, ensure_ascii=False) if args.json else format_line(entry, style=style)
        )
        print(shown, flush=args.follow)
    return 0


@dataclass(frozen=True)
class Option:
    """One argument of a command: argparse's `add_argument(*flags, **options)`."""

    flags: tuple[str, ...]
    options: dict[str, Any]


def option(*flags: str, **options: Any) -> Option:
    return Option(flags, options)


@dataclass(frozen=True)
class Command:
    """One command: its name and help, its arguments, and the handler that runs it."""

    name: str
    help: str
    handler: Callable[[Invocation], int]
    options: tuple[Option, ...] = ()
    service_io: bool = False
    """Takes --env-file and --log-file (the commands that run the service)."""


JSON = option("--json", action="store_true", help="print JSON")
TASK = option("task", metavar="TASK", help="task_id, file name or path")

SERVICE_IO = (
    option(
        "--env-file",
        type=Path,
        help="read KEY=value lines into the environment first (launchd's EnvironmentFile=)",
    ),
    option(
        "--log-file",
        type=Path,
        help=f"print to this file, kept under {LOG_FILE_MAX_BYTES // 2**20} MiB (launchd)",
    ),
)

COMMANDS: tuple[Command, ...] = (
    Command("init", "create the vault layout (never overwrites)", _init),
    Command("status", "counts, active tasks, refused notes", _status, (JSON,)),
    Command(
        "add",
        "write a new task note into Needs_Action (with --every: a series into Recurring)",
        _add,
        (
            option("title"),
            option("--type", dest="task_type", help="task type (default: default_type)"),
            option("--priority", choices=["high", "normal", "low"]),
            option("--body", help="the task text; '-' reads it from stdin"),
            option("--app", help="app folder name: the work dir is apps/<language>/<app>/"),
            option("--language", help="language folder name"),
            option(
                "--after",
                action="append",
                metavar="TASK",
                help="run after this task is done (a note name, [[link]] or task_id; repeat "
                "for more)",
            ),
            option(
                "--every",
                metavar="WHEN",
                help="a recurring task: a series in Recurring/ ('0 8 * * 1', @daily, 30m, 1d); "
                "each occurrence becomes a task",
            ),
            JSON,
        ),
    ),
    Command("approve", "approve a task (a person's approval, recorded)", _edit, (TASK, JSON)),
    Command("reject", "reject a task (to Rejected/)", _edit, (TASK, JSON)),
    Command("accept", "accept a task's work under review (to Done/)", _edit, (TASK, JSON)),
    Command(
        "request-changes",
        "send a task's work under review back with a comment: it runs again, told it",
        _request_changes,
        (
            TASK,
            option("-m", "--message", required=True, help="the comment for the agent"),
            option("--at", default="", help="the file (and :line) it is about"),
            JSON,
        ),
    ),
    Command("retry", "put a failed or cancelled task back as planned", _edit, (TASK, JSON)),
    Command("cancel", "cancel a queued or running task", _edit, (TASK, JSON)),
    Command(
        "run",
        "run the service in the foreground",
        _run,
        (
            option(
                "--polling",
                action="store_true",
                default=None,
                help="use the polling observer (network folders, WSL)",
            ),
            option(
                "--dashboard",
                action="store_true",
                help="also serve the web page (dashboard_host:dashboard_port) from this process",
            ),
        ),
        service_io=True,
    ),
    Command(
        "dashboard",
        "serve the web page: board, tasks, approvals, log",
        _dashboard,
        (
            option("--host", help="address to bind (dashboard_host, default 127.0.0.1)"),
            option("--port", type=int, help="port (dashboard_port, default 8787; 0: any)"),
        ),
    ),
    Command(
        "doctor",
        "check claude, inotify, the vault",
        _doctor,
        (
            option(
                "--no-login-check",
                action="store_true",
                help="skip the tiny claude -p login probe",
            ),
        ),
    ),
    Command(
        "service",
        "install the service (systemd/launchd)",
        _service,
        (
            option("action", choices=["install", "uninstall", "status"]),
            option("--manager", choices=["systemd", "launchd"], help="default: this platform's"),
            option(
                "--print",
                dest="print_only",
                action="store_true",
                help="only print the unit file it would write",
            ),
        ),
    ),
    Command(
        "once",
        "process everything ready, wait for those runs, exit (8 if one did not succeed)",
        _once,
        (option("--json", action="store_true", help="print the summary as JSON"),),
        service_io=True,
    ),
    Command(
        "logs",
        "show the audit log",
        _logs,
        (
            option("--task", help="only this task (task_id, file name or path)"),
            option("--follow", "-f", action="store_true", help="keep printing new entries"),
            option("--json", action="store_true", help="print the JSON lines as they are"),
        ),
    ),
)
"""Every command, in the order `--help` lists them. Each handler configures logging, calls the
module that does the work, and prints what it did."""

HANDLERS: dict[str, Callable[[Invocation], int]] = {c.name: c.handler for c in COMMANDS}


def _print(value: Any) -> None:
    if isinstance(value, str):
        print(value)
    else:
        print(json.dumps(value, indent=2, default=str))
