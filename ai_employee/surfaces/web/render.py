"""Notes and plans as HTML that cannot run anything: markdown-it with raw HTML off.

A note is a person's (or a sync tool's, or anyone's) text: `<script>` in it is shown as text,
a link goes only to http(s), mailto or a relative place, and an image becomes a link to it (the
page loads nothing a note names, so it works offline and cannot be made to fetch).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from markdown_it import MarkdownIt
from markupsafe import Markup, escape

SAFE_SCHEMES = frozenset({"http", "https", "mailto"})


def safe_link(url: str) -> bool:
    """True for a link the page may show as one: a safe scheme, or none (a relative link)."""
    cleaned = "".join(ch for ch in url if ch > " " and ch != "\x7f")
    try:
        scheme = urlsplit(cleaned).scheme.lower()
    except ValueError:
        return False
    return scheme in SAFE_SCHEMES if scheme else not cleaned.startswith("//")


def _image_as_link(renderer: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
    token = tokens[idx]
    src = str(token.attrGet("src") or "")
    alt = "".join(child.content for child in token.children or []) or src
    return f'<a href="{escape(src)}" rel="noreferrer nofollow">[image: {escape(alt)}]</a>'


def _make() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable("table")
    md.enable("strikethrough")
    md.validateLink = safe_link  # type: ignore[method-assign]  # markdown-it's documented hook
    md.add_render_rule("image", _image_as_link)

    def link_open(renderer: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
        tokens[idx].attrSet("rel", "noreferrer nofollow")
        return str(renderer.renderToken(tokens, idx, options, env))

    md.add_render_rule("link_open", link_open)
    return md


_MD = _make()


def markdown(text: str) -> Markup:
    """A note's or plan's markdown as safe HTML."""
    return Markup(_MD.render(text))  # noqa: S704 - raw HTML is off; links are checked above
