"""How numbers are said in messages, the same in the tracker's and the peer's."""

from __future__ import annotations


def counted(n: int, thing: str) -> str:
    """'1 file', '3 files'."""
    return f"{n} {thing}{'s' if n != 1 else ''}"
