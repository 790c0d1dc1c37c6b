"""Files of one chunk, fetched many at a time over one Download stream a source.

A stream a file cost ~1.3 ms of set-up at both ends (a call, and a thread on each side), where a
chunk asked ahead on an open stream costs ~0.14 ms (measured on loopback): a folder of 10,000
small files took 25 s. Here each source gets one stream, asked up to WINDOW files ahead, and one
thread that writes what comes back, each file as its own download does it (written aside,
verified, renamed into place).

A file of one chunk needs no manifest (its sha256 is its chunk list) and has nothing to resume,
so whatever goes wrong with one here (a source that fails, lies, is busy or lacks it) leaves it
to the full download path (transfers.fetch), which tries every source in turn and words the error.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from p2p_common.errors import P2PError
from peer.availability import NotHeld
from peer.chunk_store import PartialFile, Write, staged_records
from peer.downloader import STALL_SECONDS, BadSource, DownloadResult, Wanted, settled
from peer.manifest import Manifest
from peer.peer_client import ChunkStream, PeerConnection
from peer.stall import StallWatch
from peer.throttle import Throttle
from peer.tracker_client import RemoteFile

log = logging.getLogger(__name__)

WINDOW = 32  # files asked ahead on a source's stream: a round trip's worth, and few lost if it fails
MAX_SOURCES = 8  # streams at once, as a download's active sources (downloader.MAX_ACTIVE_SOURCES)

Target = tuple[RemoteFile, Path]
Key = tuple[str, str]  # a source: (peer name, address)


def implied_manifest(remote: RemoteFile) -> Manifest | None:
    """The manifest of a non-empty file of one chunk whose sha256 gives its chunk list as the
    tracker vouches for it; None for any other file (left to the full path)."""
    m = Manifest.implied(remote.sha256, remote.size, remote.chunk_size)
    if m is None or remote.size == 0 or m.problem() is not None or m.chunk_list_sha256 != remote.chunk_list_sha256:
        return None
    return m


class _Lines:
    """The files no source has been asked for yet, in one line a source: a file waits in the line
    of each source that has it, and the first of them to get to it takes it. Thread-safe."""

    def __init__(self, sources_of: list[list[Key]]):
        self._lock = threading.Lock()
        self._sources_of = sources_of
        self._lines: dict[Key, deque[int]] = {}
        self._waiting = [True] * len(sources_of)  # in a line, not taken by any source
        self._gone: set[Key] = set()
        for i, keys in enumerate(sources_of):
            for key in keys:
                self._lines.setdefault(key, deque()).append(i)

    def take(self, key: Key) -> int | None:
        with self._lock:
            line = self._lines.get(key)
            while line:
                i = line.popleft()
                if self._waiting[i]:
                    self._waiting[i] = False
                    return i
            return None

    def give_back(self, items: Sequence[int], key: Key) -> None:
        """items, taken by key and not fetched, wait again in the lines of their other sources."""
        with self._lock:
            for i in items:
                self._waiting[i] = True
                for other in self._sources_of[i]:
                    if other != key and other not in self._gone:
                        self._lines.setdefault(other, deque()).append(i)

    def close(self, key: Key) -> None:
        """key takes no more: what waits only in its line is left waiting."""
        with self._lock:
            self._gone.add(key)
            self._lines.pop(key, None)

    def waiting(self) -> list[int]:
        with self._lock:
            return [i for i, w in enumerate(self._waiting) if w]


class SmallFiles:
    """Fetch the one-chunk files of a batch over a stream a source; run() yields each fetched,
    and `left` then holds those for the full path (larger ones, and any that met trouble)."""

    def __init__(
        self,
        open_source: Callable[[str, str], PeerConnection],
        replace: bool = False,
        throttle: Throttle | None = None,
        cancel: threading.Event | None = None,
        find_staged: Callable[[Path], list[Path]] = staged_records,
        stall_seconds: float = STALL_SECONDS,
    ):
        self._open_source = open_source
        self._replace = replace
        self._throttle = throttle
        self._cancel = cancel or threading.Event()
        self._find_staged = find_staged
        self._stall_seconds = stall_seconds
        self.left: list[Target] = []
        self._troubled: list[int] = []  # files whose destination failed: the full path says why
        self._streams: list[ChunkStream] = []  # the pipes' streams, closed at once when the caller stops

    def run(self, targets: Sequence[Target]) -> Iterator[tuple[RemoteFile, Path, DownloadResult]]:
        mine: list[tuple[RemoteFile, Path, Manifest]] = []
        sources_of: list[list[Key]] = []  # of each of mine
        for remote, dest in targets:
            manifest = implied_manifest(remote)
            whole = _whole_sources(remote)
            if manifest is None or not whole:
                self.left.append((remote, dest))
                continue
            try:
                wanted = Wanted(remote.sha256, remote.size, remote.chunk_size, remote.chunk_list_sha256)
                done = settled(wanted, dest, self._replace)
            except P2PError:  # said by the full path, as for any file
                self.left.append((remote, dest))
                continue
            if done is not None:
                yield remote, dest, done
            else:
                mine.append((remote, dest, manifest))
                sources_of.append(whole)
        if mine:
            yield from self._fetch(mine, sources_of)

    def _fetch(
        self, files: list[tuple[RemoteFile, Path, Manifest]], sources_of: list[list[Key]]
    ) -> Iterator[tuple[RemoteFile, Path, DownloadResult]]:
        holding: dict[Key, int] = {}
        for keys in sources_of:
            for key in keys:
                holding[key] = holding.get(key, 0) + 1
        chosen = set(sorted(holding, key=lambda k: -holding[k])[:MAX_SOURCES])  # those holding the most
        lines = _Lines([[k for k in keys if k in chosen] for keys in sources_of])
        fetched: queue.SimpleQueue[tuple[int, DownloadResult] | None] = queue.SimpleQueue()
        pipes = [
            threading.Thread(target=self._pipe, args=(key, files, lines, fetched), name=f"small-{key[0]}", daemon=True)
            for key in chosen
        ]
        for pipe in pipes:
            pipe.start()
        running = len(pipes)
        try:
            while running:
                try:  # waited for in slices: Ctrl-C raises here only once this thread wakes
                    item = fetched.get(timeout=0.1)
                except queue.Empty:
                    continue
                if item is None:
                    running -= 1
                    continue
                i, result = item
                yield files[i][0], files[i][1], result
        finally:
            if running:  # the caller stopped early (Ctrl-C): so do the pipes, waiting on a chunk or not
                self._cancel.set()
                for stream in list(self._streams):
                    stream.close()
            for pipe in pipes:
                pipe.join(timeout=10)
        self.left.extend((files[i][0], files[i][1]) for i in sorted(self._troubled + lines.waiting()))

    def _pipe(
        self,
        key: Key,
        files: list[tuple[RemoteFile, Path, Manifest]],
        lines: _Lines,
        fetched: queue.SimpleQueue[tuple[int, DownloadResult] | None],
    ) -> None:
        """Ask one source for the files in its line, WINDOW ahead, and write each as it comes.
        A source that fails, lies or goes silent is asked for no more; what it owed waits for
        its other sources."""
        source = self._open_source(*key)
        asked: deque[int] = deque()
        stream = None
        watchdog = StallWatch(self._stall_seconds)
        try:
            while not self._cancel.is_set():
                while len(asked) < WINDOW and (i := lines.take(key)) is not None:
                    if stream is None:
                        stream = source.chunk_stream(files[i][0].sha256)
                        self._streams.append(stream)
                        if self._cancel.is_set():  # stopped as it opened: its next wait ends at once
                            stream.close()
                        watchdog.watch(stream.close)
                    stream.ask([0], files[i][0].sha256)
                    asked.append(i)
                if not asked or stream is None:
                    return
                remote, dest, manifest = files[asked[0]]
                if self._throttle is not None and self._cancel.wait(self._throttle.take(remote.size)):
                    return
                with watchdog.waiting():
                    try:
                        index, data = stream.next_chunk()
                    except NotHeld:  # no longer shared there: its other sources, or the full path
                        lines.give_back([asked.popleft()], key)
                        continue
                if index != 0:
                    raise BadSource(f"sent chunk {index} of a file of one chunk")
                try:
                    written = self._write(dest, manifest, data)
                except (P2PError, OSError):  # dest's trouble, not the source's: the full path says it
                    self._troubled.append(asked.popleft())
                    continue
                if not written:
                    raise BadSource(f"sent {remote.name} with bytes that do not match its sha256")
                fetched.put((asked.popleft(), DownloadResult(dest, remote.size, len(data), 1, 0, {source.label: 1})))
        except P2PError as exc:  # failed, busy, silent or lying: others take what it owed
            log.info("dropping source %s for small files: %s", source.label, exc)
        except Exception:  # a bug: these files take the full path
            log.exception("source %s failed for small files", source.label)
        finally:
            watchdog.stop()
            if stream is not None:
                stream.close()
            lines.close(key)
            lines.give_back(list(asked), key)
            fetched.put(None)

    def _write(self, dest: Path, manifest: Manifest, data: bytes | memoryview) -> bool:
        """data written aside, verified, renamed to dest; False when it does not verify. Trouble
        with dest itself (another transfer writing it, a full disk) raises P2PError or OSError:
        the full path says it."""
        partial = PartialFile(dest, manifest, self._find_staged)
        try:
            if partial.write_chunk(0, data) is Write.REJECTED:
                partial.discard()
                return False
            partial.finish()
            return True
        except BaseException:
            partial.close()
            raise


def _whole_sources(remote: RemoteFile) -> list[Key]:
    """remote's sources that hold it whole, each once (a partial one holds nothing of a one-chunk
    file until it is done)."""
    return list(dict.fromkeys((s.peer_name, s.address) for s in remote.sources if not s.partial))
