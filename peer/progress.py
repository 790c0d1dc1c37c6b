"""A one-line terminal progress bar: bytes, rate, ETA and peers; silent when not on a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from peer.downloader import Progress


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


class ProgressBar:
    """Redraws in place at most ten times a second; draws nothing unless stream is a terminal."""

    def __init__(self, label: str, stream: TextIO = sys.stderr, width: int = 28):
        self.label = label
        self.stream = stream
        self.enabled = stream.isatty()
        self.width = width
        self.started = time.monotonic()
        self._last = 0.0
        self._drawn = False
        self._latest: tuple[int, int, int | None] | None = None

    def update(self, done: int, total: int, peers: int | None = None, final: bool = False) -> None:
        self._latest = (done, total, peers)
        now = time.monotonic()
        if not self.enabled or (not final and now - self._last < 0.1):
            return
        self._last = now
        elapsed = max(now - self.started, 1e-6)
        rate = done / elapsed
        fraction = done / total if total else 1.0
        filled = int(self.width * fraction)
        eta = (total - done) / rate if rate > 0 and done < total else 0.0
        peers_text = f" {peers} peer{'s' if peers != 1 else ''}" if peers is not None else ""
        line = (
            f"\r{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {fraction * 100:5.1f}% "
            f"{human_bytes(done)}/{human_bytes(total)} {human_bytes(rate)}/s ETA {eta:4.0f}s{peers_text} "
        )
        self.stream.write(line)
        self.stream.flush()
        self._drawn = True

    def on_download(self, p: Progress) -> None:
        self.update(p.done_bytes, p.total_bytes, p.active_sources)

    def close(self) -> None:
        """Draw the last state (throttling may have skipped it) and end the line."""
        if self._drawn and self._latest is not None:
            self.update(*self._latest, final=True)
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
