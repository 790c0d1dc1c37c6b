"""Multi-source download scheduling: dynamic chunk assignment, endgame, failover and resume.

No gRPC here: sources come in through the small ChunkSource interface, so the scheduling can
be exercised with in-memory sources as well as with real peers.
"""

from __future__ import annotations

import errno
import logging
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from p2p_common.errors import (
    AlreadyExists,
    Busy,
    DataLoss,
    FailedPrecondition,
    NotFound,
    P2PError,
    ResourceExhausted,
    Unavailable,
)
from peer import chunking
from peer.availability import NotHeld
from peer.busy_wait import BusyWait
from peer.chunk_schedule import ChunkSchedule
from peer.chunk_store import PartialFile, Write, staged_records
from peer.manifest import Manifest
from peer.run_clock import RunClock
from peer.throttle import Throttle

log = logging.getLogger(__name__)

WINDOW = 8  # chunks asked ahead per source at most: keeps the stream busy across the round trip
# A slower source is asked ahead for what it delivers in this long (at least 2 chunks): chunks
# asked of it wait there, unavailable to the other sources, and, from a seed that other
# downloaders share, may leave it in vain (another downloader's copy reached this one first).
WINDOW_SECONDS = 0.25
# Sources streamed from at once; the others wait as spares and step in when one is dropped. Like a
# BitTorrent client's active peers: past a few, another stream adds no speed, only a window of
# buffered chunks, a channel and a thread (a popular file can list 64 sources).
MAX_ACTIVE_SOURCES = 8
# A source that delivered and then lost its connection (a restart, a network blip, this machine
# waking from sleep) is asked again, as a busy one is, for this long before it is dropped.
RECONNECT_SECONDS = 30.0
MANIFEST_ASKS = 4  # sources asked for the manifest at once, at most
MANIFEST_HEDGE = 1.0  # seconds without an answer before the next source is asked too
# A source that owes a chunk and sends nothing for this long is dropped. A peer that froze, or whose
# network went silent without a reset (a laptop asleep, a Wi-Fi gone), never fails its stream: TCP
# would retry for a quarter of an hour. A chunk (1 MiB) takes 60 s only below ~17 KiB/s.
STALL_SECONDS = 60.0
# When the tracker is asked again for the file's sources while it downloads (peers that started
# the same download meanwhile, partial sources, or finished it join as sources): every second
# REFRESH_EARLY times, then twice as long each time up to 30 s (at 8, 10, 14, 22 s...). Early is
# when a crowd starting together finds itself: until then each fetches blind from the seed, and
# two may fetch the same chunks. The others' downloads are listed ~1-1.5 s after they start, and
# with asks at 1, 3 and 7 s (doubling from the start) a flash crowd of 8 on a seed of 32 MiB/s
# found itself at 3 s, when the seed had sent most of the file once: 8.0 s and 1.81 copies out of
# the seed (bench_swarm, 128 MiB); 7.0 s and 1.62 now. A thousand long downloads then ask ~30
# times a second, not ~1,000.
REFRESH_SECONDS = 1.0
REFRESH_EARLY = 8
REFRESH_MAX_SECONDS = 30.0


class ChunkStreamLike(Protocol):
    def ask(self, indexes: list[int]) -> None: ...
    def next_chunk(self) -> tuple[int, bytes | memoryview]: ...
    def close(self) -> None: ...


class ChunkSource(Protocol):
    """One peer to fetch from. A partial one holds only some chunks: asked for another, its
    stream's next_chunk raises NotHeld with what it holds."""

    label: str
    partial: bool

    def manifest(self, sha256: str, timeout: float) -> Manifest: ...
    def chunk_stream(self, sha256: str) -> ChunkStreamLike: ...


@dataclass(frozen=True)
class Wanted:
    """The content to fetch, as the tracker vouches for it."""

    sha256: str
    size: int
    chunk_size: int
    chunk_list_sha256: str


@dataclass
class _Busy:
    """A source that refused a stream for now (Busy), and when to ask it again."""

    source: ChunkSource
    wait: BusyWait
    retry_at: float = math.inf  # monotonic; math.inf while it is being asked
    place: int = 0  # in line for its next free slot, as its last refusal said (0: not said)


@dataclass
class Progress:
    """A snapshot for progress displays."""

    total_bytes: int
    done_bytes: int
    active_sources: int
    received_bytes: int
    busy_sources: int = 0  # refused a stream for now (all their slots taken): asked again soon
    place: int = 0  # the best place in line of those for a slot (1: next; 0: none said)


@dataclass
class DownloadResult:
    path: Path
    size: int
    bytes_received: int  # payload bytes that crossed the network in this run (duplicates included)
    chunks_fetched: int
    chunks_reused: int  # already held: from an interrupted earlier run, or an earlier version staged there
    per_source: dict[str, int] = field(default_factory=dict)  # chunks written per source
    dropped: dict[str, str] = field(default_factory=dict)  # source -> why it was dropped
    already_there: bool = False  # the destination held it: nothing was done (an empty file too)


class BadSource(P2PError):
    """A source sent something wrong; it is not asked again."""


class Cancelled(P2PError):
    """The caller stopped the download (Ctrl-C in a `get` of several files); what was verified is kept."""


class NothingToGive(P2PError):
    """A partial source held none of the chunks still missing for the stall time; it is asked
    again if the tracker lists it later holding the whole file."""


def verified_manifest(
    wanted: Wanted, sources: Sequence[ChunkSource], dropped: dict[str, str], timeout: float = STALL_SECONDS
) -> Manifest:
    """The first manifest a source gives that matches what the tracker vouches for.

    One source is asked; when it has not answered within MANIFEST_HEDGE seconds the next is asked
    too (up to MANIFEST_ASKS at once), and the first good answer wins. One after another, each
    unreachable source (a peer behind NAT advertising an address nobody can dial, whose packets
    are dropped) cost the download up to `timeout` before the next was asked; all at once, every
    spare source would be dialled (and given a ticket) for nothing.

    A file of one chunk asks nobody: its manifest follows from its sha256 and is checked against
    the chunk list the tracker vouches for like any other (a round trip less a file: an album of
    photos is mostly such files)."""
    implied = Manifest.implied(wanted.sha256, wanted.size, wanted.chunk_size)
    if implied is not None and implied.problem() is None and implied.chunk_list_sha256 == wanted.chunk_list_sha256:
        return implied
    answers: queue.Queue[tuple[ChunkSource, Manifest | P2PError]] = queue.Queue()

    def ask(source: ChunkSource) -> None:
        try:
            answers.put((source, source.manifest(wanted.sha256, timeout)))
        except P2PError as exc:
            answers.put((source, exc))
        except Exception as exc:  # a bug: a failed source, not a hung download
            answers.put((source, P2PError(f"{type(exc).__name__}: {exc}")))

    waiting = deque(sources)
    asked = 0
    while asked or waiting:
        if waiting and asked < MANIFEST_ASKS:
            threading.Thread(target=ask, args=(waiting.popleft(),), name="manifest", daemon=True).start()
            asked += 1
        try:
            # with none left to ask, waited for in slices: a SIGTERM another thread took is handled
            source, answer = answers.get(timeout=MANIFEST_HEDGE if waiting and asked < MANIFEST_ASKS else 0.1)
        except queue.Empty:
            continue  # no answer yet: ask one more source beside, if any
        asked -= 1
        if isinstance(answer, P2PError):
            dropped[source.label] = str(answer)  # says what failed ("manifest: ...")
            continue
        problem = answer.problem()
        if problem is None and (answer.sha256, answer.size, answer.chunk_size, answer.chunk_list_sha256) != (
            wanted.sha256,
            wanted.size,
            wanted.chunk_size,
            wanted.chunk_list_sha256,
        ):
            problem = "does not match the chunk list the tracker vouches for"
        if problem:
            dropped[source.label] = f"manifest {problem}"
            continue
        return answer  # sources still answering are left to finish on their own (bounded by timeout)
    raise Unavailable(f"no source gave a valid manifest for {wanted.sha256[:16]}: {_reasons(dropped)}")


def _reasons(dropped: dict[str, str]) -> str:
    return "; ".join(f"{k}: {v}" for k, v in dropped.items()) or "no sources"


class Download:
    """Fetch one content from several sources into dest.

    One receiving thread per active source keeps a window of chunks asked on its stream and hands
    what arrives to a queue; WRITERS threads verify and write from it. Hashing and disk writes
    release the GIL, so receiving overlaps verifying on a second core. At most max_sources
    stream at once; a dropped one is replaced by the next spare.
    """

    WRITERS = 2

    def __init__(
        self,
        wanted: Wanted,
        sources: Sequence[ChunkSource],
        dest: Path,
        on_progress: Callable[[Progress], None] | None = None,
        window: int = WINDOW,
        max_sources: int | None = None,  # MAX_ACTIVE_SOURCES
        stall_seconds: float = STALL_SECONDS,
        throttle: Throttle | None = None,  # the rate all sources together may deliver at
        find_sources: Callable[[], Sequence[ChunkSource]] | None = None,  # the sources listed now
        refresh_seconds: float = REFRESH_SECONDS,
        me: str = "",  # the account downloading: its name among a crowd of partial sources
        cancel: threading.Event | None = None,  # set: stop, keeping what was verified
        find_staged: Callable[[Path], list[Path]] = staged_records,  # see PartialFile
        on_held: Callable[[int], None] | None = None,  # told of each chunk verified and written; asks them in order
    ):
        if not sources:
            raise NotFound(f"no live peer has {wanted.sha256[:16]}")
        self.wanted = wanted
        self.sources = list(sources)
        self.dest = dest
        self.on_progress = on_progress
        self.window = window
        self.max_sources = max_sources or MAX_ACTIVE_SOURCES
        self.stall_seconds = stall_seconds
        self.throttle = throttle
        self.find_sources = find_sources
        self.refresh_seconds = refresh_seconds
        self.me = me
        self.cancel = cancel
        self.find_staged = find_staged
        self.on_held = on_held
        self._found: queue.SimpleQueue[Sequence[ChunkSource]] = queue.SimpleQueue()  # from refreshes
        self._refreshing = threading.Event()  # a refresh is under way
        self._clock = RunClock()  # for stall cut-offs: a pause of this process is nobody's silence
        self._owed_since: dict[str, tuple[float, ChunkStreamLike]] = {}  # waiting for a chunk asked for (_clock)
        self._stalled: dict[str, str] = {}  # sources cut off for silence, and why
        self.dropped: dict[str, str] = {}
        self._active = 0  # receivers running (under the schedule's lock)
        self._receivers: list[threading.Thread] = []
        self._spares: deque[ChunkSource] = deque()
        self._stop = threading.Event()
        self._streams: list[ChunkStreamLike] = []
        self._received: queue.Queue[tuple[str, int, bytes | memoryview] | None] = queue.Queue(maxsize=2 * window)
        self._bad: dict[str, str] = {}  # sources a writer caught lying; their receivers stop
        self._idle_partial: set[str] = set()  # partial sources dropped for having nothing to give
        self._busy: dict[str, _Busy] = {}  # sources that refused a stream for now, to ask again
        self._fatal: Exception | None = None  # writing failed (disk full...): the download stops
        self._writers = 0  # threads writing what receivers queue; none: receivers write

    def run(self) -> DownloadResult:
        manifest = verified_manifest(self.wanted, self.sources, self.dropped, self.stall_seconds)
        partial = PartialFile(self.dest, manifest, self.find_staged)
        reused = manifest.chunk_count - len(partial.missing())
        if self.on_held is not None:
            for index in partial.held():
                self.on_held(index)
        partial_sources = {s.label for s in self.sources if s.partial}
        schedule = ChunkSchedule(partial, partial_sources, self.me, in_order=self.on_held is not None)
        live = [s for s in self.sources if s.label not in self.dropped]
        self._spares.extend(live[self.max_sources :])
        # A thread costs ~0.3 ms to start here (it must win the GIL), as much as fetching a small
        # file: the receiver writes the one chunk of such a file itself.
        count = self.WRITERS if manifest.chunk_count - reused > 1 else 0
        writers = [threading.Thread(target=self._write, args=(schedule,), name="write") for _ in range(count)]
        self._writers = count
        interrupted = True
        try:
            for t in writers:
                t.start()
            with schedule.cond:
                for source in live[: self.max_sources]:
                    self._start_receiver(source, schedule)
            self._wait(schedule)
            interrupted = False
        finally:
            self._stop.set()
            for stream in list(self._streams):
                stream.close()  # cancels the losers of duplicated endgame requests
            with schedule.cond:
                receivers = list(self._receivers)  # none starts once _stop is set
            for t in receivers:
                t.join(timeout=10)
            for _ in writers:
                self._received.put(None)  # writers finish what was received, then stop
            for t in writers:
                t.join(timeout=30)
            for label, why in self._bad.items():  # caught lying after the download no longer needed it
                self.dropped.setdefault(label, why)
            if partial.bytes_held == 0 and not partial.complete:
                partial.discard()  # nothing to resume: no litter of staged files
            elif interrupted or not partial.complete:
                partial.close()  # keeps what was verified, for a resume
        if self._fatal is not None:
            raise _write_error(self._fatal, self.dest)
        if not partial.complete:
            missing = len(partial.missing())
            raise Unavailable(f"{missing} of {manifest.chunk_count} chunks could not be fetched: {_reasons(self.dropped)}")
        path = partial.finish()
        return DownloadResult(path, manifest.size, schedule.received, schedule.fetched, reused, schedule.per_source, self.dropped)

    def _wait(self, schedule: ChunkSchedule) -> None:
        """Until complete, or no source is left, or writing failed; reports progress 20 times a
        second and cuts off sources that went silent."""
        interval, refreshes = self.refresh_seconds, 0
        next_refresh = time.monotonic() + interval
        while True:
            if self.cancel is not None and self.cancel.is_set():
                raise Cancelled("stopped; a rerun fetches only what is missing")
            with schedule.cond:
                if schedule.partial.complete or (self._active == 0 and not self._busy) or self._fatal is not None:
                    break
                schedule.cond.wait(0.05)
                self._ask_busy_again(schedule)
                waiting = [b for b in self._busy.values() if b.retry_at < math.inf]
                place = min((b.place for b in waiting if b.place), default=0)
            self._cut_off_silent_sources()
            if self.find_sources is not None and time.monotonic() >= next_refresh and not self._refreshing.is_set():
                self._refreshing.set()
                threading.Thread(target=self._refresh, args=(self.find_sources,), name="refresh", daemon=True).start()
                refreshes += 1
                if refreshes >= REFRESH_EARLY:
                    interval = min(2 * interval, max(REFRESH_MAX_SECONDS, self.refresh_seconds))
                next_refresh = time.monotonic() + interval
            while not self._found.empty():
                self._add_sources(self._found.get(), schedule)
            if self.on_progress:  # outside the lock: drawing never holds up the workers
                held = schedule.partial.bytes_held
                self.on_progress(Progress(self.wanted.size, held, self._active, schedule.received, len(waiting), place))
        if self.on_progress:
            self.on_progress(Progress(self.wanted.size, schedule.partial.bytes_held, self._active, schedule.received))

    def _refresh(self, find_sources: Callable[[], Sequence[ChunkSource]]) -> None:
        """On a thread of its own: a slow tracker never holds up progress or the stall cut-off."""
        try:
            self._found.put(find_sources())
        except Exception as exc:  # the tracker being away does not stop a download
            log.info("could not refresh the sources: %s", exc)
        finally:
            self._refreshing.clear()

    def _add_sources(self, found: Sequence[ChunkSource], schedule: ChunkSchedule) -> None:
        """Sources listed since the download started stream at once, or wait as spares; so does a
        partial source dropped for having nothing to give that now holds the whole file."""
        known = {s.label for s in self.sources}
        with schedule.cond:
            for source in found:
                rejoins = source.label in self._idle_partial and not source.partial
                if (source.label in known and not rejoins) or self._stop.is_set():
                    continue
                if rejoins:
                    self._idle_partial.discard(source.label)
                    del self.dropped[source.label]
                    schedule.set_partial(source.label, False)
                    schedule.heard(source.label, None)
                known.add(source.label)
                self.sources.append(source)
                if source.partial:
                    schedule.set_partial(source.label, True)
                if self._active < self.max_sources:
                    self._start_receiver(source, schedule)
                else:
                    self._spares.append(source)

    def _wait_for_a_slot(
        self, source: ChunkSource, refusal: P2PError, schedule: ChunkSchedule, give_up: float | None = None, what: str = "busy"
    ) -> bool:
        """source refused a stream (or lost one): when to ask it again (it streams from the others
        meanwhile, see busy_wait); False when it has refused for too long."""
        with schedule.cond:
            busy = self._busy.get(source.label) or _Busy(source, BusyWait(give_up))
            seconds = busy.wait.next(refusal.retry_after if isinstance(refusal, Busy) else None)
            busy.place = refusal.place if isinstance(refusal, Busy) else 0
            if seconds is None:
                self.dropped[source.label] = f"{what} for {busy.wait.give_up_seconds:g} s: {refusal}"
                return False
            busy.retry_at = time.monotonic() + seconds
            self._busy[source.label] = busy
            return True

    def _reconnects(self, source: ChunkSource, error: P2PError, schedule: ChunkSchedule) -> bool:
        """Whether a source whose stream failed is asked again rather than dropped: one that had
        delivered in this download and then lost its connection (restarted, a network blip, this
        machine waking from sleep). One never heard from, cut off as silent, or caught lying is
        dropped at once, as before."""
        return (
            isinstance(error, Unavailable)
            and source.label in schedule.delivered
            and source.label not in self._stalled
            and source.label not in self._bad
        )

    def _ask_busy_again(self, schedule: ChunkSchedule) -> None:
        """Under schedule.cond: sources that refused a stream stream again once their wait is over
        and a place among max_sources is free."""
        now = time.monotonic()
        for busy in self._busy.values():
            if busy.retry_at <= now and self._active < self.max_sources and not schedule.partial.complete:
                busy.retry_at = math.inf  # asked now; refused again, it waits its next wait
                self._start_receiver(busy.source, schedule)

    def _cut_off_silent_sources(self) -> None:
        now = self._clock.now()
        for label, (since, stream) in list(self._owed_since.items()):
            if now - since > self.stall_seconds and label not in self._stalled:
                self._stalled[label] = f"sent nothing for {self.stall_seconds:g} s"
                stream.close()  # its receiver's wait ends in an error, and the source is dropped

    def _start_receiver(self, source: ChunkSource, schedule: ChunkSchedule) -> None:
        """Under schedule.cond: one more source streaming."""
        thread = threading.Thread(target=self._receive, args=(source, schedule), name=f"fetch-{source.label}")
        self._receivers.append(thread)
        self._active += 1
        thread.start()

    def _receive(self, source: ChunkSource, schedule: ChunkSchedule) -> None:
        asked: deque[int] = deque()
        stream: ChunkStreamLike | None = None
        idle_since = self._clock.now()  # since the last chunk this source delivered
        arrivals: deque[float] = deque(maxlen=self.window)  # when its last chunks came in
        window = self.window
        refused = False  # asks for no stream now: to be asked again (_busy)
        try:
            stream = source.chunk_stream(self.wanted.sha256)
            self._streams.append(stream)
            while not self._stop.is_set() and not schedule.partial.complete:
                if source.label in self._bad:
                    raise BadSource(self._bad[source.label])
                # refill only once half the window came in: one request for several chunks, not
                # one a chunk, spares both ends ~10-15% of their CPU (measured on 1 GiB)
                batch: list[int] = []
                while len(asked) <= window // 2 and len(asked) + len(batch) < window:
                    index = schedule.take(source.label)
                    if index is None:
                        break
                    batch.append(index)
                if batch:
                    asked.extend(batch)
                    stream.ask(batch)
                if source.partial and self._clock.now() - idle_since > self.stall_seconds:
                    raise NothingToGive(f"held none of the chunks still missing for {self.stall_seconds:g} s")
                if not asked:
                    with schedule.cond:
                        schedule.cond.wait(0.1)
                    continue
                if self.throttle is not None:  # read the next chunk only when the rate allows it
                    self._stop.wait(self.throttle.take(schedule.partial.manifest.chunk_length(asked[0])))
                self._owed_since[source.label] = (self._clock.now(), stream)
                try:
                    index, data = stream.next_chunk()
                except NotHeld as answer:
                    if answer.index in answer.held:  # asked again and again, it would never give it
                        raise BadSource(f"said it lacks chunk {answer.index} and listed it as held") from None
                    index, data = answer.index, None
                    schedule.heard(source.label, answer.held)
                del self._owed_since[source.label]
                expected = asked.popleft()
                if index != expected:
                    asked.appendleft(expected)
                    raise BadSource(f"sent chunk {index} when chunk {expected} was next")
                if data is None:  # not held yet: another source, or this one later, fetches it
                    schedule.give_back(source.label, [index])
                    continue
                idle_since = self._clock.now()
                arrivals.append(idle_since)
                if len(arrivals) == arrivals.maxlen and arrivals[-1] > arrivals[0]:
                    rate = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])  # chunks a second
                    window = max(2, min(self.window, math.ceil(rate * WINDOW_SECONDS)))
                if self._writers:
                    self._received.put((source.label, index, data))
                else:  # one chunk to fetch: no thread is started to write it
                    self._write_one(schedule, source.label, index, data)
        except Busy as exc:  # serving as many transfers as it allows: ask again later
            if not self._stop.is_set():
                refused = self._wait_for_a_slot(source, exc, schedule)
        except P2PError as exc:
            if self._stop.is_set():
                pass
            elif self._reconnects(source, exc, schedule):  # its connection broke: ask it again for a while
                refused = self._wait_for_a_slot(source, exc, schedule, RECONNECT_SECONDS, "unreachable")
            else:
                self.dropped[source.label] = self._stalled.get(source.label, str(exc))
                if isinstance(exc, NothingToGive):
                    self._idle_partial.add(source.label)
                # the result (or the error, when none is left) says it to the user; a log line
                # would break into a progress bar
                log.info("dropping source %s: %s", source.label, self.dropped[source.label])
        except Exception as exc:  # a bug: say so, and carry on with the other sources
            if not self._stop.is_set():
                self.dropped[source.label] = f"{type(exc).__name__}: {exc}"
                log.exception("source %s failed", source.label)
        finally:
            self._owed_since.pop(source.label, None)
            if stream is not None:
                stream.close()  # a dropped source streams no more into buffers nobody reads
            schedule.give_back(source.label, list(asked))
            schedule.left(source.label, dropped=source.label in self.dropped)
            with schedule.cond:
                if not refused:
                    self._busy.pop(source.label, None)
                if self._spares and not self._stop.is_set() and not schedule.partial.complete:
                    self._start_receiver(self._spares.popleft(), schedule)
                self._active -= 1
                schedule.cond.notify_all()

    def _write(self, schedule: ChunkSchedule) -> None:
        while (item := self._received.get()) is not None:
            self._write_one(schedule, *item)

    def _write_one(self, schedule: ChunkSchedule, label: str, index: int, data: bytes | memoryview) -> None:
        if self._fatal is not None:
            return
        try:
            outcome = schedule.partial.write_chunk(index, data)
            if outcome is Write.WRITTEN and self.on_held is not None:  # before done: the last one's
                self.on_held(index)  # done lets run() rename the staged file
        except Exception as exc:  # disk full, or a bug: stop the download rather than hang it
            self._fatal = exc
            with schedule.cond:
                schedule.cond.notify_all()
            return
        if outcome is Write.REJECTED:
            self._bad[label] = f"chunk {index}: hash mismatch"
            schedule.give_back(label, [index])
        else:
            schedule.done(index, label, len(data), outcome is Write.WRITTEN)


def _write_error(exc: Exception, dest: Path) -> P2PError:
    if isinstance(exc, P2PError):
        return exc
    if not isinstance(exc, OSError):
        return P2PError(f"cannot write {dest}: {type(exc).__name__}: {exc}")
    if exc.errno == errno.ENOSPC:
        return ResourceExhausted(f"disk full while writing {dest} (verified chunks are kept; free space and rerun)")
    return P2PError(f"cannot write {dest}: {exc.strerror or exc}")


def settled(wanted: Wanted, dest: Path, replace: bool) -> DownloadResult | None:
    """What dest says before any byte moves: a result when it holds wanted already; None when
    the download may go on. A different file at dest is kept unless replace says otherwise: a
    download never destroys what it did not write (an upload to a peer is refused the same way)."""
    if dest.is_file() and dest.stat().st_size == wanted.size and chunking.sha256_of(dest) == wanted.sha256:
        chunks = chunking.chunk_count(wanted.size, wanted.chunk_size)
        return DownloadResult(dest, wanted.size, bytes_received=0, chunks_fetched=0, chunks_reused=chunks, already_there=True)
    if dest.is_dir():
        raise AlreadyExists(f"{dest} is a directory")
    if dest.exists() and not dest.is_file():  # never replaced, not even with replace (as root: /dev/null)
        raise FailedPrecondition(f"{dest} is a device, pipe or socket; a download is written to a file or folder")
    if not replace and (dest.exists() or dest.is_symlink()):
        raise AlreadyExists(f"{dest} already exists with other content (--force replaces it)")
    return None


def download(
    wanted: Wanted,
    sources: Sequence[ChunkSource],
    dest: Path,
    on_progress: Callable[[Progress], None] | None = None,
    stall_seconds: float = STALL_SECONDS,
    throttle: Throttle | None = None,
    find_sources: Callable[[], Sequence[ChunkSource]] | None = None,
    me: str = "",
    cancel: threading.Event | None = None,
    find_staged: Callable[[Path], list[Path]] = staged_records,
    on_held: Callable[[int], None] | None = None,
) -> DownloadResult:
    """Fetch wanted into dest from sources (and those find_sources lists later); the file appears
    only complete and verified."""
    job = Download(
        wanted,
        sources,
        dest,
        on_progress,
        stall_seconds=stall_seconds,
        throttle=throttle,
        find_sources=find_sources,
        me=me,
        cancel=cancel,
        find_staged=find_staged,
        on_held=on_held,
    )
    result = job.run()
    if result.size != wanted.size:
        raise DataLoss(f"{dest} has {result.size} bytes, expected {wanted.size}")
    return result
