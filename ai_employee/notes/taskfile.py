"""Task notes: parse them, and change only the keys we own, byte for byte.

`parse_note` and `edit_note_text` are pure. A YAML library only *locates* our keys and validates
the frontmatter; edits are splices into the original text, so a person's comments, key order,
quoting, flow lists, folded scalars, blank lines, BOM and line endings all stay as they wrote them.
Reading from and writing to disk lives in `notefile`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import frontmatter.default_handlers
import yaml

from ..base.errors import NoteRefused
from .lifecycle import Priority, Status
from .review import comments_in, with_comment, without_review

OWNED_KEYS: tuple[str, ...] = (
    "task_id",
    "status",
    "plan",
    "planned_at",
    "approved_at",
    "approved_by",
    "started_at",
    "completed_at",
    "attempts",
    "next_attempt_at",
    "session_id",
    "cost_usd",
    "duration_s",
    "exit_code",
    "error",
    "rounds",
    "requested_tools",
    "granted_tools",
    "base_commit",
    "head_commit",
    "changes",
    "put_back",
    "review_sent",
    "branch",
    "base_branch",
    "merged",
    "after_ids",
    "waiting_for",
    "series_id",
    "occurrence",
    "next_at",
    "last_occurrence",
    "last_skipped",
)
"""The closed list of frontmatter keys the service writes. Every other key is the person's."""

HELD_AS_COPY = "held as a copy: "
"""How `error` begins on a note held as a copy of another task (identity.py); the reason
follows, naming the original, where it is and what differs."""


def held_reason(error: object) -> str | None:
    """Why a note is held as a copy (its `error` says), or None."""
    if isinstance(error, str) and error.startswith(HELD_AS_COPY):
        return error[len(HELD_AS_COPY) :]
    return None


RESULT_HEADING = "## Result"
"""Our body section, always the last one in a note; replaced on a re-run."""

FENCE = frontmatter.default_handlers.YAMLHandler.FM_BOUNDARY
"""python-frontmatter's fence: a line of three or more dashes."""

MAX_YAML_NODES = 10_000
"""Frontmatter whose aliases expand past this many nodes is refused (an alias bomb)."""

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_RESOLVER = yaml.resolver.Resolver()
_PLAIN_SAFE = re.compile(r"^[A-Za-z0-9_\[(][A-Za-z0-9_ .,:/@+()'\[\]-]*$")
_TASK_ID_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
TASK_ID_SHAPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
"""A task_id a note may carry (ours are 8 of _TASK_ID_ALPHABET; a person's may be any such
word): it names a plan, a work dir and a transcript, so never a path, a space or a newline."""
_HEADING = re.compile(r"^#[ \t]+(.+?)[ \t#]*$", re.MULTILINE)


@dataclass(frozen=True)
class Layout:
    """Where the parts of a note's text are. Offsets index the text without its BOM."""

    bom: str
    newline: str
    fm_start: int | None  # first character inside the fences
    fm_end: int | None  # first character of the closing fence line
    body_start: int


@dataclass(frozen=True)
class TaskNote:
    """A parsed note: the person's keys, our keys, and what we derive from them."""

    name: str
    meta: Mapping[Any, Any]
    body: str
    empty: bool = False
    layout: Layout | None = field(default=None, repr=False, compare=False)

    @property
    def title(self) -> str:
        title = self.meta.get("title")
        if isinstance(title, str) and title.strip():
            return title.strip()
        heading = _HEADING.search(self.body)
        if heading:
            return heading.group(1).strip()
        return self.name.removesuffix(".md")

    @property
    def status(self) -> Status | None:
        """Our status; None when the note has none yet (it is new)."""
        raw = self.meta.get("status")
        return None if raw is None or raw == "" else Status(raw)

    @property
    def task_type(self) -> str | None:
        raw = self.meta.get("type")
        return str(raw).strip() if raw not in (None, "") else None

    @property
    def priority(self) -> Priority:
        raw = self.meta.get("priority")
        try:
            return Priority(str(raw).strip().lower()) if raw else Priority.NORMAL
        except ValueError:
            return Priority.NORMAL

    @property
    def task_id(self) -> str | None:
        raw = self.meta.get("task_id")
        return str(raw) if raw not in (None, "") else None

    @property
    def requires_approval(self) -> bool:
        raw = self.meta.get("requires_approval")
        if isinstance(raw, str):
            return raw.strip().lower() in ("true", "yes", "1", "on")
        return bool(raw)

    @property
    def review(self) -> bool | None:
        """The person's `review:` (None: the note does not say; its type decides)."""
        raw = self.meta.get("review")
        if raw is None or raw == "":
            return None
        if isinstance(raw, str):
            return raw.strip().lower() in ("true", "yes", "1", "on")
        return bool(raw)

    @property
    def on_repo(self) -> bool:
        """The note names a person's repository (`repo:`): its task works in a worktree of
        it (running/worktree.py checks the path)."""
        return self.meta.get("repo") not in (None, "")

    @property
    def attempts(self) -> int:
        raw = self.meta.get("attempts")
        return raw if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 0 else 0

    def when(self, key: str) -> datetime | None:
        """A date key of ours as an aware datetime, or None if missing or unreadable."""
        return as_datetime(self.meta.get(key))

    def owned(self) -> dict[str, Any]:
        """Our keys as they stand in the note."""
        return {key: self.meta[key] for key in OWNED_KEYS if self.meta.get(key) is not None}

    @property
    def asked(self) -> str:
        """What was asked: the title and the person's text (not our Result). A plan is made
        from it, and a task is known by its hash (`text_hash`)."""
        return f"{self.title}\n{self.body_asked.strip()}"

    @property
    def body_asked(self) -> str:
        """What the person asked: the body without our `## Result` and without their `## Review`
        comments on work under review (review.py)."""
        return without_review(self.body_without_result)

    @property
    def review_comments(self) -> str:
        """The person's comments under `## Review` ("" when none)."""
        return comments_in(self.body_without_result)

    @property
    def result(self) -> str:
        """Our `## Result` section's text, without its heading ("" when there is none)."""
        start = _result_start(self.body)
        return "" if start is None else self.body[start + len(RESULT_HEADING) :].strip()

    @property
    def body_without_result(self) -> str:
        """The person's body, without our `## Result` section (what a plan is made from)."""
        start = _result_start(self.body)
        return self.body if start is None else self.body[:start]


def tool_rules(meta: Mapping[str, object], key: str) -> tuple[str, ...]:
    """The permission rules a note holds under `key` (`requested_tools`, `granted_tools`): a
    list of strings, or one string; anything else holds none."""
    value = meta.get(key)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return ()
    return tuple(dict.fromkeys(str(v).strip() for v in value if isinstance(v, str) and v.strip()))


def grant_requested(meta: Mapping[str, object]) -> dict[str, object]:
    """The keys an approval writes when the agent asked for tools (`requested_tools`): they
    join `granted_tools` (this task's only), the request and its error are cleared. Only while
    the note still waits (`pending_approval`, or `approved` by a person's hand there): on a note
    a person rejected or ended the request is cleared, never granted. Empty when nothing was
    asked. Every approval (a move to Approved/, `ai-employee approve`, the web page) writes
    these."""
    requested = tool_rules(meta, "requested_tools")
    if not requested:
        return {}
    waiting = (Status.PENDING_APPROVAL.value, Status.APPROVED.value)
    if meta.get("status") not in waiting:  # rejected (or ended) meanwhile: the request died
        return {"requested_tools": None}  # with it, and is never granted by a later approval
    granted = dict.fromkeys((*tool_rules(meta, "granted_tools"), *requested))
    return {"granted_tools": list(granted), "requested_tools": None, "error": None}


def text_hash(text: str) -> str:
    """A short hash of a task's text (TaskNote.asked), as plans record it."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def new_task_id() -> str:
    """A short random id: 8 characters, no look-alikes (about 1e12 possibilities)."""
    return "".join(secrets.choice(_TASK_ID_ALPHABET) for _ in range(8))


def derived_task_id(seed: str) -> str:
    """A task_id that is the same wherever and whenever it is made from `seed` (a series'
    occurrence: written once, recognised on every machine and after every restart)."""
    digest = hashlib.sha256(seed.encode("utf-8")).digest()
    return "".join(_TASK_ID_ALPHABET[b % len(_TASK_ID_ALPHABET)] for b in digest[:8])


def as_datetime(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def decode_note(data: bytes, max_bytes: int) -> str:
    """Bytes of a note to text, or a refusal a person understands."""
    if len(data) > max_bytes:
        raise NoteRefused(
            f"note is {len(data):,} bytes, over max_note_bytes ({max_bytes:,}); split it or raise "
            "the limit"
        )
    if b"\x00" in data:
        raise NoteRefused("binary file (it contains NUL bytes), not a markdown note")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise NoteRefused(
            f"not UTF-8 text (byte 0x{data[err.start]:02x} at offset {err.start}); save it as UTF-8"
        ) from err


def locate(text: str) -> Layout:
    """Find the BOM, the line ending and the frontmatter fences; refuse an unclosed fence."""
    bom = "\ufeff" if text.startswith("\ufeff") else ""
    content = text[len(bom) :]
    first_end = content.find("\n")
    newline = "\r\n" if first_end > 0 and content[first_end - 1] == "\r" else "\n"
    first_line = content[: first_end if first_end >= 0 else len(content)]
    if not FENCE.fullmatch(first_line) or first_end < 0:
        if FENCE.fullmatch(first_line):
            raise NoteRefused(
                "frontmatter fence '---' on line 1 never closes (add a closing '---')"
            )
        return Layout(bom, newline, None, None, 0)
    pos = first_end + 1
    while pos <= len(content):
        end = content.find("\n", pos)
        line = content[pos : end if end >= 0 else len(content)]
        if FENCE.fullmatch(line):
            return Layout(bom, newline, first_end + 1, pos, len(content) if end < 0 else end + 1)
        if end < 0:
            break
        pos = end + 1
    raise NoteRefused("frontmatter fence '---' on line 1 never closes (add a closing '---')")


def parse_note(text: str, name: str) -> TaskNote:
    """Parse a note's text. Raises NoteRefused for anything we cannot trust."""
    if not text.strip("\ufeff \t\r\n"):
        return TaskNote(name=name, meta={}, body="", empty=True)
    layout = locate(text)
    content = text[len(layout.bom) :]
    meta: Mapping[Any, Any] = {}
    if layout.fm_start is not None and layout.fm_end is not None:
        meta, _ = _load_yaml(content[layout.fm_start : layout.fm_end])
    body = content[layout.body_start :]
    status = meta.get("status")
    if status not in (None, "") and (
        not isinstance(status, str) or status not in Status._value2member_map_
    ):
        raise NoteRefused(
            f"unknown status {status!r} (expected one of: {', '.join(s.value for s in Status)})"
        )
    task_id = meta.get("task_id")
    if task_id not in (None, "") and not TASK_ID_SHAPE.fullmatch(str(task_id)):
        shown = str(task_id) if len(str(task_id)) <= 40 else str(task_id)[:40] + "..."
        raise NoteRefused(
            f"task_id {shown!r} is not a plain id (letters, digits, '-' and '_', at most 64); "
            "delete the line and the note gets a new one"
        )
    return TaskNote(name=name, meta=meta, body=body, layout=layout)


PARSE_CACHE_MAX_CHARS = 4096
"""Frontmatter up to this size is parsed once and remembered (see _load_yaml)."""


def _load_yaml(fm: str) -> tuple[Mapping[Any, Any], yaml.MappingNode | None]:
    """The frontmatter as data plus its node tree (for positions), refusing what we cannot trust.

    One task's frontmatter is parsed several times in a row (read, decide, then edit; a claim's
    check and edit), so small ones are remembered by their exact text. Callers never change the
    result: `TaskNote.meta` is a read-only Mapping and the node tree is only read.
    """
    if len(fm) <= PARSE_CACHE_MAX_CHARS:
        return _load_yaml_remembered(fm)
    return _load_yaml_now(fm)


@functools.lru_cache(maxsize=512)
def _load_yaml_remembered(fm: str) -> tuple[Mapping[Any, Any], yaml.MappingNode | None]:
    return _load_yaml_now(fm)


def _load_yaml_now(fm: str) -> tuple[Mapping[Any, Any], yaml.MappingNode | None]:
    loader = _Loader(fm)
    try:
        node = loader.get_single_node()
        if node is None:
            return {}, None
        if "*" in fm:  # without an alias nothing can expand
            _check_size(node)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f" at line {mark.line + 2}, column {mark.column + 1}" if mark else ""
        hint = ""
        if mark is not None and fm[mark.index : mark.index + 1] in ("@", "`"):
            hint = f'; a value that begins with {fm[mark.index]} must be quoted: "@daily"'
        raise NoteRefused(
            f"frontmatter is not valid YAML{where}: {err.problem or err}{hint}"
        ) from err
    except yaml.YAMLError as err:
        raise NoteRefused(f"frontmatter is not valid YAML: {err}") from err
    except RecursionError as err:
        raise NoteRefused("frontmatter nests too deeply to be a task note") from err
    finally:
        loader.dispose()
    if not isinstance(data, dict) or not isinstance(node, yaml.MappingNode):
        kind = type(data).__name__
        raise NoteRefused(
            f"frontmatter is a YAML {kind}, not a mapping of keys (like 'title: ...')"
        )
    return data, node


def _check_size(root: yaml.Node) -> None:
    """Refuse alias bombs and recursive aliases before anything walks the data."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: yaml.Node) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        if id(node) in active:
            raise NoteRefused("frontmatter has a recursive YAML alias")
        active.add(id(node))
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(child) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(size(k) + size(v) for k, v in node.value)
        active.discard(id(node))
        sizes[id(node)] = total
        if total > MAX_YAML_NODES:
            raise NoteRefused(
                f"frontmatter expands to more than {MAX_YAML_NODES:,} YAML nodes through aliases "
                "(an alias bomb?)"
            )
        return total

    size(root)


def render_value(value: object) -> str:
    """A YAML scalar for one of our values, plain where that reads back as the same value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = f"{value:.6f}".rstrip("0")
        return text + "0" if text.endswith(".") else text
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, Status):
        return value.value
    if isinstance(value, list | tuple):  # a flow sequence of strings, exactly (JSON is YAML)
        return _quoted([str(item) for item in value])
    if isinstance(value, dict):  # a flow mapping of strings (or nulls), exactly
        return _quoted({str(k): None if v is None else str(v) for k, v in value.items()})
    text = " ".join(str(value).split())  # our values are one line
    if (
        _PLAIN_SAFE.match(text)
        and ": " not in text
        and " #" not in text
        and not text.endswith((":", " "))
        and not text.startswith(("[", "("))
        and _resolves_to_str(text)
    ):
        return text
    return _quoted(text)


_NOT_YAML_PRINTABLE = re.compile("[\x7f-\x9f\u2028\u2029\ufffe\uffff]")
"""Escaped in a quoted value: what YAML does not allow in a document, and the line breaks it
would fold (NEL, LS, PS), which JSON leaves as they are."""
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _quoted(value: str | list[str] | dict[str, str | None]) -> str:
    """A JSON string or list of strings, which YAML reads back as written: characters YAML does
    not allow in a document are escaped (a lone surrogate, never valid UTF-8, becomes U+FFFD)."""
    text = json.dumps(value, ensure_ascii=False)
    text = _LONE_SURROGATE.sub("\ufffd", text)
    return _NOT_YAML_PRINTABLE.sub(lambda m: f"\\u{ord(m[0]):04x}", text)


@functools.lru_cache(maxsize=1024)
def _resolves_to_str(text: str) -> bool:
    """True when YAML reads this plain scalar back as a string (not a bool, number or date)."""
    tag: str = _RESOLVER.resolve(yaml.ScalarNode, text, (True, False))  # type: ignore[no-untyped-call]
    return tag == "tag:yaml.org,2002:str"


def edit_note_text(
    text: str, changes: Mapping[str, object | None], result: str | None = None
) -> str:
    """Set (or, with None, remove) our keys and optionally replace our `## Result` section.

    Only the lines of the keys in `changes` change; missing keys are added after the person's keys.
    """
    unknown = set(changes) - set(OWNED_KEYS)
    if unknown:
        raise ValueError(f"not our keys: {sorted(unknown)}")
    layout = locate(text)
    content = text[len(layout.bom) :]
    nl = layout.newline
    head, body = content[: layout.body_start], content[layout.body_start :]
    if layout.fm_start is not None and layout.fm_end is not None:
        fm = content[layout.fm_start : layout.fm_end]
        data, node = _load_yaml(fm) if fm.strip() else ({}, None)
        new_fm = _edit_frontmatter(fm, node, changes, nl)
        if any(v is None for v in changes.values()) and not _same_person_keys(data, new_fm):
            # Taking a line out changed a person's value next to it (a `|+` or `>+` block keeps
            # the blank lines that now follow it): our key stays, as null, instead.
            new_fm = _edit_frontmatter(fm, node, changes, nl, remove_lines=False)
        head = content[: layout.fm_start] + new_fm + content[layout.fm_end : layout.body_start]
    else:
        additions = [f"{k}: {render_value(v)}{nl}" for k, v in _ordered(changes) if v is not None]
        if additions:
            head = f"---{nl}{''.join(additions)}---{nl}"
    if result is not None:
        body = _replace_result(body, result, nl)
    return layout.bom + head + body


def _same_person_keys(before: Mapping[str, Any], fm: str) -> bool:
    """Whether the person's keys read the same in the edited front matter."""
    try:
        after, _ = _load_yaml(fm) if fm.strip() else ({}, None)
    except (NoteRefused, yaml.YAMLError):
        return False
    mine = set(OWNED_KEYS)
    return {k: v for k, v in before.items() if k not in mine} == {
        k: v for k, v in after.items() if k not in mine
    }


def _ordered(changes: Mapping[str, object | None]) -> list[tuple[str, object | None]]:
    return sorted(changes.items(), key=lambda item: OWNED_KEYS.index(item[0]))


def _content_end(node: yaml.Node) -> int:
    """Where a value's own text ends. A block sequence or mapping's end mark is the next key's
    start, past any comment and blank lines after its last item (the person's): those stay."""
    if isinstance(node, yaml.SequenceNode) and not node.flow_style and node.value:
        return _content_end(node.value[-1])
    if isinstance(node, yaml.MappingNode) and not node.flow_style and node.value:
        return _content_end(node.value[-1][1])
    return int(node.end_mark.index)


def _line_start(text: str, index: int) -> int:
    return text.rfind("\n", 0, index) + 1


def _line_end(text: str, index: int) -> int:
    """The index just past the newline of the line holding `index`."""
    end = text.find("\n", index)
    return len(text) if end < 0 else end + 1


def _edit_frontmatter(
    fm: str,
    node: yaml.MappingNode | None,
    changes: Mapping[str, object | None],
    nl: str,
    remove_lines: bool = True,
) -> str:
    """Splice `changes` into the front matter's text; a None removes the key's lines (or, with
    `remove_lines` off, sets it to null where it stands)."""
    splices: list[tuple[int, int, str]] = []
    additions: list[tuple[str, str]] = []
    pairs = node.value if node is not None else []
    flow = bool(node is not None and node.flow_style)
    for key, value in _ordered(changes):
        found = [(k, v) for k, v in pairs if isinstance(k, yaml.ScalarNode) and k.value == key]
        if not found:
            if value is not None:
                additions.append((key, render_value(value)))
            continue
        for k, v in found:
            k_start, v_end = k.start_mark.index, _content_end(v)
            one_line = "\n" not in fm[k_start:v_end]
            if value is None and not flow and remove_lines:
                last = max(v_end - 1, k.end_mark.index)
                splices.append((_line_start(fm, k_start), _line_end(fm, last), ""))
            elif one_line or flow:
                rendered = "null" if value is None else render_value(value)
                splices.append((k_start, v_end, f"{key}: {rendered}"))
            else:
                rendered = "null" if value is None else render_value(value)
                splices.append(
                    (_line_start(fm, k_start), _line_end(fm, v_end - 1), f"{key}: {rendered}{nl}")
                )
    if additions:
        if flow and node is not None:
            close = node.end_mark.index - 1  # the closing brace
            text = "".join(f", {k}: {v}" for k, v in additions)
            if not pairs:
                text = text[2:]
            splices.append((close, close, text))
        else:
            text = "".join(f"{k}: {v}{nl}" for k, v in additions)
            if pairs:
                last_value = pairs[-1][1]
                at = _line_end(fm, max(last_value.end_mark.index - 1, pairs[-1][0].end_mark.index))
            else:
                at = len(fm)
            if at > 0 and not fm[:at].endswith("\n"):
                text = nl + text
            splices.append((at, at, text))
    for start, end, replacement in sorted(splices, key=lambda s: s[0], reverse=True):
        fm = fm[:start] + replacement + fm[end:]
    return fm


def with_review_comment(text: str, comment: str) -> str:
    """The note's text with `comment` appended under its `## Review` section (made before our
    `## Result` when there is none): a person's comment, as `request-changes` and the page
    write it. Only the body before our section changes, and only by what is added."""
    layout = locate(text)
    content = text[len(layout.bom) :]
    body = content[layout.body_start :]
    start = _result_start(body)
    asked, result = (body, "") if start is None else (body[:start], body[start:])
    added = with_comment(asked, comment, layout.newline)
    if result:
        added += layout.newline
    return layout.bom + content[: layout.body_start] + added + result


def _result_start(body: str) -> int | None:
    """Where our `## Result` heading starts: the last such heading line, if any."""
    pos = len(body)
    while True:
        found = body.rfind(RESULT_HEADING, 0, pos)
        if found < 0:
            return None
        line_end = body.find("\n", found)
        line = body[found : line_end if line_end >= 0 else len(body)].rstrip("\r \t")
        if (found == 0 or body[found - 1] == "\n") and line == RESULT_HEADING:
            return found
        pos = found


def _replace_result(content: str, result: str, nl: str) -> str:
    section_lines = [RESULT_HEADING, "", *result.strip("\n").splitlines()]
    section = nl.join(line.rstrip("\r") for line in section_lines) + nl
    start = _result_start(content)
    if start is not None:
        return content[:start] + section
    if content and not content.endswith("\n"):
        content += nl
    if content.strip() and not content.endswith(nl + nl) and not content.endswith("\n\n"):
        content += nl
    return content + section
