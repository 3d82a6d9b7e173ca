"""A person's comments on work under review: the note's `## Review` section.

A person asks for changes by writing under a `## Review` heading (in Obsidian, or through
`ai-employee request-changes` and the page, which append there) and moving the note back to
Needs_Action/. The section is the person's: it is never rewritten. What the agent was told is
remembered in our key `review_sent` (a hash and a length of the comments sent), so a comment is
sent once, and an appended one alone (text written above what was sent sends it all again).
The section is not part of what was asked (a plan, a task's identity): comments do not change
the task. Pure: text in, text out.
"""

from __future__ import annotations

import hashlib

REVIEW_HEADING = "## Review"
"""The heading of a person's comments on work under review."""


def review_span(body: str) -> tuple[int, int] | None:
    """Where the `## Review` section is in a body: its heading line's start, and the start of
    the next `## ` heading (or the end). The first such heading counts."""
    pos = 0
    while pos <= len(body):
        end = body.find("\n", pos)
        line = body[pos : end if end >= 0 else len(body)].rstrip("\r \t")
        if line == REVIEW_HEADING:
            return pos, _next_heading(body, len(body) if end < 0 else end + 1)
        if end < 0:
            return None
        pos = end + 1
    return None


def _next_heading(body: str, pos: int) -> int:
    while pos < len(body):
        if body.startswith("## ", pos):
            return pos
        end = body.find("\n", pos)
        if end < 0:
            return len(body)
        pos = end + 1
    return len(body)


def comments_in(body: str) -> str:
    """The text of the `## Review` section (stripped; "" when there is none)."""
    span = review_span(body)
    if span is None:
        return ""
    start, end = span
    heading_end = body.find("\n", start, end)
    return body[heading_end + 1 : end].strip() if heading_end >= 0 else ""


def without_review(body: str) -> str:
    """The body without its `## Review` section."""
    span = review_span(body)
    return body if span is None else body[: span[0]] + body[span[1] :]


def sent_mark(comments: str) -> str:
    """What `review_sent` records of the comments sent: their hash and length."""
    digest = hashlib.sha256(comments.encode("utf-8")).hexdigest()[:16]
    return f"{digest}:{len(comments)}"


def unsent(comments: str, sent: object) -> str:
    """The comments not sent yet: all of them, or what was appended after those sent."""
    if not isinstance(sent, str) or ":" not in sent:
        return comments
    digest, _, length = sent.partition(":")
    if not length.isdigit() or int(length) > len(comments):
        return comments
    head = comments[: int(length)]
    if sent_mark(head) != f"{digest}:{length}":
        return comments  # edited above what was sent: all of it again
    return comments[int(length) :].strip()


def with_comment(body: str, comment: str, newline: str = "\n") -> str:
    """A body (without our `## Result`) with `comment` appended to its `## Review` section, or
    the section made at its end. Only appends: nothing the person wrote is rewritten."""
    text = newline.join(comment.strip().splitlines())
    span = review_span(body)
    if span is None:
        head = body.rstrip("\r\n")
        glue = newline * 2 if head else ""
        return f"{head}{glue}{REVIEW_HEADING}{newline}{newline}{text}{newline}"
    before, after = body[: span[1]].rstrip("\r\n"), body[span[1] :]
    return f"{before}{newline}{newline}{text}{newline}" + (f"{newline}{after}" if after else "")
