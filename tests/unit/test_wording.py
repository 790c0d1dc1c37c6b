"""How numbers are said in messages (p2p_common.wording)."""

from __future__ import annotations

from p2p_common.wording import counted, ordinal


def test_counted_and_ordinals():
    assert [counted(1, "file"), counted(3, "file"), counted(0, "file")] == ["1 file", "3 files", "0 files"]
    said = [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 101, 111, 112)]
    assert said == ["1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st", "111th", "112th"]
