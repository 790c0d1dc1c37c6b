"""Text as a terminal shows it: the columns a name takes (East Asian wide characters two,
combining marks none), names shortened to fit, and how wide the terminal is."""

from __future__ import annotations

import os
import unicodedata
from typing import TextIO

ELLIPSIS = "…"
_NO_WIDTH = {"Mn", "Me", "Cf"}  # combining marks and format characters (zero-width space, joiners)


def display_width(text: str) -> int:
    """Columns text takes on a terminal (what len() is for ASCII)."""
    if text.isascii():
        return len(text)
    return sum(_char_width(c) for c in text)


def _char_width(c: str) -> int:
    if unicodedata.category(c) in _NO_WIDTH:
        return 0
    return 2 if unicodedata.east_asian_width(c) in ("W", "F") else 1


def pad(text: str, width: int) -> str:
    """text left-aligned in width columns (as f"{text:<{width}}" for ASCII)."""
    return text + " " * max(width - display_width(text), 0)


def shorten(text: str, width: int) -> str:
    """text in at most width columns: its start and end kept, the middle elided ("holiday…01.mp4"),
    as a name's end (its number, its type) tells files apart as much as its start."""
    if display_width(text) <= width:
        return text
    if width < 2:
        return ""
    head = _take(text, width // 2)
    tail = _take(text[::-1], width - 1 - display_width(head))[::-1]
    return head + ELLIPSIS + tail


def _take(text: str, width: int) -> str:
    """The longest start of text in at most width columns."""
    used = 0
    for i, c in enumerate(text):
        used += _char_width(c)
        if used > width:
            return text[:i]
    return text


def columns(stream: TextIO, fallback: int = 80) -> int:
    """How many columns the terminal stream writes to has now (it may have been resized)."""
    try:
        return os.get_terminal_size(stream.fileno()).columns or fallback
    except (OSError, ValueError):  # not a terminal, or a stream without a descriptor
        return fallback
