"""Markdown as GitHub renders it, for the tests of the docs: the anchors of a page's headings and the relative
links it makes (code left out: a link in a code block or span is not one)."""

from __future__ import annotations

import re
from pathlib import Path

FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`[^`\n]*`")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # https:, mailto:, ...


def _without_code_blocks(text: str) -> str:
    return FENCE.sub("", text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped (word characters, spaces and hyphens
    stay), spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading anchors by its text
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of every heading of the page; a repeated heading gets -1, -2, ... as on GitHub."""
    found: set[str] = set()
    for heading in HEADING.findall(_without_code_blocks(path.read_text())):
        anchor = base = slug(heading)
        count = 0
        while anchor in found:
            count += 1
            anchor = f"{base}-{count}"
        found.add(anchor)
    return found


def relative_links(path: Path) -> list[str]:
    """Every link target of the page that is not a URL with a scheme: `file.md`, `file.md#anchor`, `#anchor`."""
    text = CODE_SPAN.sub("", _without_code_blocks(path.read_text()))
    return [target for target in LINK.findall(text) if not EXTERNAL.match(target)]
