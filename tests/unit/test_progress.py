"""The progress bar: drawn on a terminal with bytes, rate, ETA and peers; silent otherwise."""

from __future__ import annotations

import io

from peer.downloader import Progress
from peer.progress import BatchProgress, ProgressBar, human_bytes
from peer.terminal import display_width, pad, shorten


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bar_on_a_terminal_shows_bytes_rate_eta_and_peers():
    out = FakeTerminal()
    bar = ProgressBar("movie.mkv", stream=out)
    bar.on_download(Progress(total_bytes=100 << 20, done_bytes=25 << 20, active_sources=3, received_bytes=25 << 20))
    bar.update(100 << 20, 100 << 20, 3, final=True)
    bar.close()
    text = out.getvalue()
    assert text.startswith("\rmovie.mkv [") and "25.0%" in text and "100.0%" in text
    assert "25.0 MiB/100.0 MiB" in text and "/s ETA" in text and "3 peers" in text and text.endswith("\n")


def test_peers_that_refused_for_now_are_shown_as_busy():
    """A get waiting for a slot on its only source shows why it does not move, and its place in
    line when the source said it."""
    out = FakeTerminal()
    bar = ProgressBar("lecture.mp4", stream=out)
    bar.on_download(Progress(total_bytes=64 << 20, done_bytes=0, active_sources=0, received_bytes=0, busy_sources=1))
    bar.close()
    assert "0 peers, 1 busy" in out.getvalue() and "in line" not in out.getvalue()
    batch = BatchProgress(2, 2 << 20, stream=FakeTerminal())
    batch.on_download("a")(Progress(1 << 20, 0, 0, 0, busy_sources=1, place=3))
    batch.on_download("b")(Progress(1 << 20, 0, 1, 0, busy_sources=1, place=2))
    batch.close()
    assert "1 stream, 2 busy (2nd in line)" in batch.bar.stream.getvalue()  # type: ignore[attr-defined]


def test_no_bar_when_not_a_terminal():
    out = io.StringIO()
    bar = ProgressBar("x", stream=out)
    bar.update(1, 2, 1, final=True)
    bar.close()
    assert out.getvalue() == ""


def test_human_bytes():
    assert human_bytes(0) == "0 B" and human_bytes(1536) == "1.5 KiB" and human_bytes(3 << 30) == "3.0 GiB"


def test_the_last_state_is_drawn_even_when_throttled():
    out = FakeTerminal()
    bar = ProgressBar("x", stream=out)
    bar.update(10, 100, 2)
    bar.update(100, 100, 2)  # within 0.1 s of the previous frame: skipped for now
    bar.close()
    assert out.getvalue().rstrip("\n").endswith("2 peers\x1b[K") and "100.0%" in out.getvalue()


def test_several_downloads_share_one_bar_and_each_result_line_is_printed_above_it():
    out, lines = FakeTerminal(), io.StringIO()
    display = BatchProgress(files=2, total_bytes=300, stream=out)
    first, second = display.on_download("a"), display.on_download("b")
    first(Progress(total_bytes=100, done_bytes=50, active_sources=2, received_bytes=50))
    second(Progress(total_bytes=200, done_bytes=100, active_sources=1, received_bytes=100))
    assert "0/2 files" in out.getvalue()  # (redrawn at most 10 times a second)
    display.ended("a", 100, "a: verified", lines)
    first(Progress(total_bytes=100, done_bytes=10, active_sources=2, received_bytes=10))  # too late: ignored
    display.close()
    drawn = out.getvalue()
    assert lines.getvalue() == "a: verified\n"
    assert "\r\x1b[K" in drawn  # the bar was erased for the line
    last = drawn.rsplit("\r", 1)[1]  # the last state drawn: the late update changed nothing
    assert "1/2 files" in last and "66.7%" in last and "1 stream\x1b[K" in last and drawn.endswith("\n")


def test_the_rate_is_of_the_bytes_that_came_lately_not_of_those_there_at_the_start():
    """A resumed get starts with most of its bytes: they are no speed, and the ETA follows the rate
    of the last seconds (a transfer that slows down shows it)."""
    now = [100.0]
    out = FakeTerminal()
    bar = ProgressBar("iso", stream=out, clock=lambda: now[0])
    MiB = 1 << 20
    bar.update(60 * MiB, 100 * MiB, 1)  # 60 MiB were there already
    assert "0 B/s ETA    --" in out.getvalue()  # no rate known yet
    for second in range(1, 3):
        now[0] += 1
        bar.update((60 + 10 * second) * MiB, 100 * MiB, 1)
    assert out.getvalue().rsplit("\r", 1)[1].startswith("iso [") and "10.0 MiB/s ETA    2s" in out.getvalue()
    for _ in range(10):  # then it slows to 1 MiB a second: within the window, so does the rate
        now[0] += 1
        bar.update(bar._latest[0] + MiB, 100 * MiB, 1)  # type: ignore[index]
    assert "1.0 MiB/s ETA   10s" in out.getvalue().rsplit("\r", 1)[1]
    whole = FakeTerminal()  # all of it there at the start: nothing to wait for, no rate
    ProgressBar("iso", stream=whole, clock=lambda: now[0]).update(100 * MiB, 100 * MiB, 0, final=True)
    assert "100.0% 100.0 MiB/100.0 MiB 0 B/s ETA    0s" in whole.getvalue()


def test_a_long_name_is_shortened_so_the_bar_stays_on_one_row():
    """A line wider than the terminal wraps, and every frame is then drawn a row lower."""
    name = "Holiday Videos 2026/" + "very long name " * 8 + "part 01.mp4"
    for columns in (200, 100, 80, 60, 40):
        out = FakeTerminal()
        bar = ProgressBar(name, stream=out, columns=lambda columns=columns: columns)
        bar.update(30 << 20, 100 << 20, 3, final=True)
        bar.close()
        frame = out.getvalue().split("\r")[-1]  # the last frame
        line = frame.removesuffix("\n").removesuffix("\x1b[K")
        assert 0 < display_width(line) <= columns - 1, (columns, line)
        assert "3 peers" in line or columns < 60, (columns, line)
        assert ("[" in line) == (columns >= 80), (columns, line)  # the bar goes before the numbers
        if columns >= 80:
            assert line.startswith("Holiday") and "…" in line and "01.mp4 [" in line


def test_names_in_wide_characters_are_measured_in_columns():
    assert display_width("日本語.txt") == 10 and display_width("cafe\u0301") == 4 and display_width("abc") == 3
    assert pad("日本", 6) == "日本  " and pad("abc", 2) == "abc"
    short = shorten("日本語の長いファイル名.mp4", 12)
    assert display_width(short) <= 12 and short.startswith("日本語") and short.endswith(".mp4") and "…" in short
    assert shorten("short.txt", 12) == "short.txt" and shorten("anything", 1) == ""
