"""A one-line terminal progress bar: bytes, rate, ETA and peers; silent when not on a terminal."""

from __future__ import annotations

import math
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TextIO

from p2p_common.wording import counted, ordinal
from peer import terminal
from peer.downloader import Progress

# The rate shown is of the bytes that came in this long before: it follows a transfer that speeds
# up or slows down, and bytes that were there at the start (a resumed get) do not count as speed.
RATE_WINDOW_SECONDS = 5.0
SHORTEST_LABEL = 16  # columns a long name is shortened to before the bar gives up any


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


class ProgressBar:
    """Redraws in place at most ten times a second; draws nothing unless stream is a terminal."""

    def __init__(
        self,
        label: str,
        stream: TextIO = sys.stderr,
        width: int = 28,
        counting: str = "peer",
        clock: Callable[[], float] = time.monotonic,
        columns: Callable[[], int] | None = None,
    ):
        self.label = label
        self.counting = counting  # what the last number counts
        self.stream = stream
        self.enabled = stream.isatty()
        self.width = width
        self._clock = clock
        self._columns = columns or (lambda: terminal.columns(stream))
        self._samples: deque[tuple[float, int]] = deque()  # (when, done) as drawn, over the rate window
        self._last = -math.inf
        self._drawn = False
        self._latest: tuple[int, int, int | None, int, int] | None = None  # done, total, peers, busy, place

    def update(self, done: int, total: int, peers: int | None = None, final: bool = False, busy: int = 0, place: int = 0) -> None:
        """busy: peers that refused for now (all their slots taken) and are asked again soon;
        place: the best place in line for a slot they said (1: next)."""
        self._latest = (done, total, peers, busy, place)
        now = self._clock()
        if not self.enabled or (not final and now - self._last < 0.1):
            return
        self._last = now
        samples = self._samples
        samples.append((now, done))
        while len(samples) > 2 and now - samples[1][0] >= RATE_WINDOW_SECONDS:
            samples.popleft()
        since, done_then = samples[0]
        rate = (done - done_then) / (now - since) if now > since else 0.0
        fraction = done / total if total else 1.0
        left = max(total - done, 0)
        eta = "   0s" if not left else f"{left / rate:4.0f}s" if rate > 0 else "   --"
        peers_text = f" {counted(peers, self.counting)}" if peers is not None else ""
        peers_text += f", {busy} busy" if busy else ""
        peers_text += f" ({ordinal(place)} in line)" if busy and place else ""
        stats = f" {fraction * 100:5.1f}% {human_bytes(done)}/{human_bytes(total)} {human_bytes(rate)}/s ETA {eta}{peers_text}"
        self.stream.write(f"\r{self._fit(fraction, stats)}\x1b[K")
        self.stream.flush()
        self._drawn = True

    def _fit(self, fraction: float, stats: str) -> str:
        """The line in one terminal row (a line that wraps is redrawn below itself, every frame):
        the label shortened first, then the bar, which goes once it would be under 10 columns."""
        limit = self._columns() - 1  # some terminals wrap on writing in the last column
        room = limit - terminal.display_width(stats)
        label_width = terminal.display_width(self.label)
        width = min(self.width, room - 3 - min(label_width, SHORTEST_LABEL))  # 3: " [" and "]"
        bar = ""
        if width >= 10:
            filled = int(width * fraction)
            bar = f" [{'#' * filled}{'.' * (width - filled)}]"
        line = terminal.shorten(self.label, max(room - len(bar), 0)) + bar + stats
        return terminal.shorten(line, limit)  # a very narrow terminal: the stats too

    def on_download(self, p: Progress) -> None:
        self.update(p.done_bytes, p.total_bytes, p.active_sources, busy=p.busy_sources, place=p.place)

    def clear(self) -> None:
        """Erase the bar: a line is printed where it was, and the next update draws it below."""
        if self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._last = -math.inf

    def close(self) -> None:
        """Draw the last state (throttling may have skipped it) and end the line."""
        if self._drawn and self._latest is not None:
            done, total, peers, busy, place = self._latest
            self.update(done, total, peers, final=True, busy=busy, place=place)
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()


class BatchProgress:
    """One bar for the files of one `get` or `put` (files ended, bytes, rate, ETA, the streams of
    the transfers under way), with each file's result line printed above it as the file ends.
    Called from the transfers' threads."""

    def __init__(self, files: int, total_bytes: int, stream: TextIO = sys.stderr):
        self.files = files
        self.total_bytes = total_bytes
        self.bar = ProgressBar(f"0/{files} files", stream, counting="stream")
        self._lock = threading.Lock()
        self._under_way: dict[object, Progress] = {}  # the last progress of each transfer under way
        self._ended: set[object] = set()
        # the sizes of the files that ended, kept as a sum: a bar drawn for every chunk of 20,000
        # files summed 20,000 numbers each time
        self._ended_bytes = 0

    def on_download(self, key: object) -> Callable[[Progress], None]:
        """The progress callback of the transfer of key."""

        def update(p: Progress) -> None:
            with self._lock:
                if key not in self._ended:  # a late update changes nothing
                    self._under_way[key] = p
                    self._draw()

        return update

    def ended(self, key: object, size: int, line: str, out: TextIO | None = None) -> None:
        """key's transfer ended (its work is done, whatever happened): print line (to stdout
        unless told) above the bar."""
        with self._lock:
            self._ended.add(key)
            self._ended_bytes += size
            self._under_way.pop(key, None)
            self.bar.clear()
            print(line, file=out or sys.stdout, flush=True)
            self.bar.label = f"{len(self._ended)}/{self.files} files"
            self._draw(final=True)

    def _draw(self, final: bool = False) -> None:
        under_way = self._under_way.values()
        held = self._ended_bytes + sum(p.done_bytes for p in under_way)
        streams = sum(p.active_sources for p in under_way)
        places = [p.place for p in under_way if p.place]
        busy = sum(p.busy_sources for p in under_way)
        self.bar.update(held, self.total_bytes, streams, final=final, busy=busy, place=min(places, default=0))

    def close(self) -> None:
        self.bar.close()
