"""How numbers are said in messages, the same in the tracker's and the peer's."""

from __future__ import annotations


def counted(n: int, thing: str) -> str:
    """'1 file', '3 files'."""
    return f"{n} {thing}{'s' if n != 1 else ''}"


def ordinal(n: int) -> str:
    """'1st', '2nd', '3rd', '4th', '11th', '22nd'."""
    suffix = "th" if n % 100 in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
