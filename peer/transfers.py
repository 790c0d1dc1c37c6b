"""Client-side transfers: find a file on the tracker and fetch it; push a file to a named peer."""

from __future__ import annotations

import logging
import os
import threading
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, replace
from pathlib import Path

from p2p.v1 import peer_pb2 as pb
from p2p_common.errors import Busy, DataLoss, FailedPrecondition, InvalidArgument, NotFound
from p2p_common.names import STATE_DIR_NAME, is_sha256_prefix, name_problem
from peer import chunking
from peer.busy_wait import BusyWait
from peer.chunk_store import StagedListing, is_staging_file, staged_records
from peer.downloader import STALL_SECONDS, Cancelled, DownloadResult, Progress, Wanted, download, settled
from peer.jobs import each_at_once
from peer.manifest import Manifest
from peer.peer_client import PeerChannels, PeerConnection
from peer.small_files import SmallFiles
from peer.throttle import Throttle
from peer.tracker_client import RemoteFile, Source, TrackerClient
from peer.upload_stream import UploadResult, UploadStream

log = logging.getLogger(__name__)


def resolve(tracker: TrackerClient, spec: str, peer: str = "") -> RemoteFile:
    """The one content spec names: a sha256 or its first 8+ digits (what `search` shows is enough),
    an exact shared name, or a name pattern that matches one content; among what account peer
    shares, by its names, if given."""
    _check_spec(spec)
    digits = spec.lower()
    if is_sha256_prefix(digits):
        found = tracker.query(sha256=digits, limit=_LISTED + 1, peer=peer)
        if len(found) == 1:
            return found[0]
        if found:
            several = f"{len(found)} files" if len(found) <= _LISTED else f"more than {_LISTED} files"
            raise FailedPrecondition(f"{several} have a sha256 starting with {spec}: {_listing(found)}; give more digits")
        if len(digits) == 64:
            raise NotFound(f"{_who(tracker, peer)} holds no content {spec}" if peer else f"no live peer has content {spec}")
        # hex digits can be a name too ("cafebabe.txt" matches "cafebabe")
    candidates = _named_exactly(tracker, spec, peer) or tracker.query(pattern=spec, limit=_MATCHES + 1, peer=peer)
    if not candidates:
        also = " and no shared content's sha256 starts with it" if is_sha256_prefix(digits) else ""
        raise NotFound(f"no file named {spec!r} is shared by {_who(tracker, peer)}{also}")
    if len(candidates) > 1:
        several = f"{len(candidates)}" if len(candidates) <= _MATCHES else f"more than {_MATCHES}"
        raise FailedPrecondition(
            f"{several} files match {spec!r}: {_listing(candidates)}; "
            "name one by its sha256 (the digits shown will do), or take all (--all)"
        )
    return candidates[0]


def _check_spec(spec: str) -> None:
    if not spec.strip():  # an unset shell variable, most likely: not "everything"
        raise InvalidArgument("an empty name names no file: give a name, a pattern ('*' for all) or sha256 digits")


def _who(tracker: TrackerClient, peer: str) -> str:
    """Who was asked for a file that none has: "a live peer", or peer by name (NotFound if it is
    not online: that, not a missing file, is what went wrong)."""
    if not peer:
        return "a live peer"
    places_of(tracker, peer)
    return f"peer {peer!r}"


def _named_exactly(tracker: TrackerClient, spec: str, peer: str = "") -> list[RemoteFile]:
    """The contents shared under the path spec, or with spec as their file name. Asked for as
    such: among the first page of a substring search ("report.txt" is in "old-report.txt" too,
    and pages come in sha256 order) the one named so could be missing."""
    glob = _exact_glob(spec)
    if glob is None:  # no letter or digit: only the substring search
        return []
    typed = unicodedata.normalize("NFC", spec)
    found = {f.sha256: f for pattern in (glob, "*/" + glob) for f in tracker.query(pattern=pattern, limit=_MATCHES, peer=peer)}
    exact = []
    for f in found.values():  # named as asked: a content shared as first.txt and second.txt too
        if names := [s.name for s in f.sources if _is_named(s.name, typed) and (not peer or s.peer_name == peer)]:
            exact.append(replace(f, name=min(names, key=lambda n: unicodedata.normalize("NFC", n) != typed)))
    return exact


def _exact_glob(name: str) -> str | None:
    """A glob that matches name alone, as the tracker matches (so case and accents aside): its glob
    characters as classes of one, and one letter or digit too, so that it is a glob at all."""
    first = next((i for i, c in enumerate(name) if c.isalnum()), None)
    if first is None:
        return None
    return "".join(f"[{c}]" if c in "*?[" or i == first else c for i, c in enumerate(name))


def resolve_all(tracker: TrackerClient, spec: str, limit: int = 10_000, peer: str = "") -> list[RemoteFile]:
    """Every content spec names: those starting with its digits if it is a sha256 (prefix) that
    some content starts with, else those whose name matches it; at least one. Among what account
    peer shares, by its names, if given."""
    _check_spec(spec)
    digits = spec.lower()
    if is_sha256_prefix(digits) and (found := tracker.query(sha256=digits, limit=limit, peer=peer)):
        return found
    found = tracker.query(pattern=spec, limit=limit, peer=peer)
    if not found and peer:
        raise NotFound(f"{_who(tracker, peer)} shares no file matching {spec!r}")
    if not found:
        raise NotFound(f"no live peer shares a file matching {spec!r}")
    return found


_LISTED = 5  # contents named in an "ambiguous" error
_MATCHES = 1000  # matches of a name counted for an "ambiguous" error


def _is_named(name: str, typed: str) -> bool:
    """typed (in NFC) is name or its last part, in whichever Unicode form either was written
    ("Café" typed names the one a Mac wrote decomposed)."""
    name = unicodedata.normalize("NFC", name)
    return typed in (name, name.rsplit("/", 1)[-1])


def _listing(found: list[RemoteFile]) -> str:
    return ", ".join(f"{f.name} ({f.sha256[:12]})" for f in found[:_LISTED])


def connect(
    tracker: TrackerClient, peer_name: str, address: str, channels: PeerChannels, partial: bool = False
) -> PeerConnection:
    """Calls to peer_name at address (over channels' connection), with tickets from tracker."""
    return PeerConnection(peer_name, address, lambda fresh: tracker.ticket(peer_name, fresh), channels, partial)


def fetch(
    tracker: TrackerClient,
    remote: RemoteFile,
    dest: Path,
    on_progress: Callable[[Progress], None] | None = None,
    replace: bool = False,
    stall_seconds: float = STALL_SECONDS,
    throttle: Throttle | None = None,
    cancel: threading.Event | None = None,
    channels: PeerChannels | None = None,
    find_staged: Callable[[Path], list[Path]] = staged_records,
    on_held: Callable[[int], None] | None = None,
) -> DownloadResult:
    """Download remote from all its live sources into dest; nothing moves if dest already holds it.

    A different file at dest is kept unless replace says otherwise: a download never destroys
    what it did not write (an upload to a peer is refused the same way). throttle caps the rate
    all sources together deliver at (shared by the files of one `get`), channels the connections
    to peers (the same too; without, the file's own, closed when it ends), find_staged what earlier
    versions are staged beside dest (see PartialFile), on_held is told of each chunk as it is
    verified and written, the chunks then asked for in file order (see InOrderOutput)."""
    if channels is None:
        with closing(PeerChannels(tracker.tls)) as own:
            return fetch(tracker, remote, dest, on_progress, replace, stall_seconds, throttle, cancel, own, find_staged, on_held)
    wanted = Wanted(remote.sha256, remote.size, remote.chunk_size, remote.chunk_list_sha256)
    if (done := settled(wanted, dest, replace)) is not None:
        return done
    sources = _sources(tracker, remote, channels)
    if not sources:
        raise NotFound(f"no live peer has {remote.name}")

    def listed_now() -> list[PeerConnection]:  # peers that started or finished this download since
        for found in tracker.query(sha256=remote.sha256, limit=1):
            if Wanted(found.sha256, found.size, found.chunk_size, found.chunk_list_sha256) == wanted:
                return _sources(tracker, found, channels)
        return []

    return download(
        wanted,
        sources,
        dest,
        on_progress,
        stall_seconds,
        throttle,
        find_sources=listed_now,
        me=tracker.name,
        cancel=cancel,
        find_staged=find_staged,
        on_held=on_held,
    )


@dataclass(frozen=True)
class Fetched:
    """One file of fetch_many, as it ended: its result, or why it failed."""

    remote: RemoteFile
    dest: Path
    result: DownloadResult | None
    error: Exception | None


def fetch_many(
    tracker: TrackerClient,
    targets: Sequence[tuple[RemoteFile, Path]],
    jobs: int,
    on_progress: Callable[[Path], Callable[[Progress], None]] | None = None,
    replace: bool = False,
    stall_seconds: float = STALL_SECONDS,
    throttle: Throttle | None = None,
) -> Iterator[Fetched]:
    """Fetch several files, jobs of them at once (each from all its sources), within one rate cap;
    yields each as it ends, a failed one with its error while the others go on. When the caller
    stops (Ctrl-C raises in it while it waits here), the downloads under way stop and keep what
    they verified, for a rerun."""
    cancel = threading.Event()
    channels = PeerChannels(tracker.tls)
    staged = StagedListing()  # each folder listed once for all

    def one(target: tuple[RemoteFile, Path]) -> DownloadResult:
        remote, dest = target
        progress = on_progress(dest) if on_progress else None
        return fetch(tracker, remote, dest, progress, replace, stall_seconds, throttle, cancel, channels, staged)

    def open_source(peer_name: str, address: str) -> PeerConnection:
        return connect(tracker, peer_name, address, channels)

    small = SmallFiles(open_source, replace, throttle, cancel, staged, stall_seconds)
    try:
        for remote, dest, result in small.run(targets):
            yield Fetched(remote, dest, result, None)
        with closing(each_at_once(small.left, jobs, one, cancel)) as outcomes:
            for (remote, dest), outcome in outcomes:
                if isinstance(outcome, Exception):
                    yield Fetched(remote, dest, None, outcome)
                else:
                    yield Fetched(remote, dest, outcome, None)
    finally:
        channels.close()


def _sources(tracker: TrackerClient, remote: RemoteFile, channels: PeerChannels) -> list[PeerConnection]:
    """Connections (not made yet) to remote's sources, one a peer (a peer sharing the content under
    two names is listed twice; the tracker lists whole copies first). A partial source of this
    account is, as a rule, this very download seen by the serving peer whose share it goes into:
    left out."""
    listed: dict[tuple[str, str], Source] = {}
    for s in remote.sources:
        if not (s.partial and s.peer_name == tracker.name):
            listed.setdefault((s.peer_name, s.address), s)
    return [connect(tracker, s.peer_name, s.address, channels, s.partial) for s in listed.values()]


def peer_statuses(
    tracker: TrackerClient, peer_name: str, addresses: list[str] | None = None
) -> list[tuple[str, pb.GetStatusResponse | Exception]]:
    """(address, status, or why there is none) of every serving session of peer_name (an account
    may serve from several; or of those at addresses): asked all at once, so that one frozen place
    neither hides the others' answers nor makes them wait in turn."""
    addresses = addresses or places_of(tracker, peer_name)

    def ask(address: str) -> pb.GetStatusResponse:
        return connect(tracker, peer_name, address, channels).status()

    with closing(PeerChannels(tracker.tls)) as channels:
        found = dict(each_at_once(addresses, len(addresses), ask, threading.Event()))
    return [(address, found[address]) for address in addresses]


_HIDDEN = "hidden, as a share leaves it out (name it on its own to send it)"


def files_to_send(
    paths: Sequence[Path], as_name: str | None = None, on_skip: Callable[[Path, str], None] | None = None
) -> list[tuple[Path, str]]:
    """(local file, name on the receiver) for each file the paths hold, as `cp -r PATH... DEST`
    names them: a file by its name, a folder as its files in their folders, under its own name.
    as_name renames one file or folder; with several paths, it is the folder they go into.
    Every path and name is checked before any byte moves.

    In a folder, what a share would not share either is left out, and told to on_skip with the
    reason: hidden files and folders (.git, .env: named on their own, they are sent), symbolic
    links (not followed), pipes and devices, a peer's own files (a share's state folder, the
    staged files of a transfer under way)."""
    found: list[tuple[Path, str]] = []
    skip = on_skip or (lambda _path, _why: None)
    for path in paths:
        if path.is_symlink():
            raise InvalidArgument(f"{path} is a symbolic link (links are not followed: send what it points to)")
        if not path.exists():
            raise InvalidArgument(f"{path}: no such file or folder")
        if not (path.is_file() or path.is_dir()):
            raise InvalidArgument(f"{path} is not a file or folder")
        top = path.resolve().name
        if as_name is not None:
            top = as_name if len(paths) == 1 else f"{as_name.rstrip('/')}/{top}"
        if path.is_file():
            found.append((path, top))
            continue
        for folder, subfolders, names in os.walk(path):
            for sub in list(subfolders):
                if (Path(folder) / sub).is_symlink():  # os.walk lists them, and does not go in
                    subfolders.remove(sub)
                    skip(Path(folder) / sub, "a symbolic link, not followed")
                elif sub == STATE_DIR_NAME:
                    subfolders.remove(sub)
                    skip(Path(folder) / sub, "a peer's own state")
                elif sub.startswith("."):
                    subfolders.remove(sub)
                    skip(Path(folder) / sub, _HIDDEN)
            subfolders.sort()
            inside = Path(folder).relative_to(path)
            for file_name in sorted(names):
                local = Path(folder) / file_name
                if local.is_symlink():
                    skip(local, "a symbolic link, not followed")
                elif is_staging_file(file_name):
                    skip(local, "the staged part of a transfer under way")
                elif file_name.startswith("."):
                    skip(local, _HIDDEN)
                elif not local.is_file():
                    skip(local, "not a regular file")
                else:
                    found.append((local, (Path(top) / inside / file_name).as_posix()))
    if not found:
        raise InvalidArgument(
            "no files to send: " + ", ".join(str(p) for p in paths) + (" hold none" if len(paths) > 1 else " holds none")
        )
    named: dict[str, Path] = {}
    for local, name in found:
        if problem := name_problem(name):
            raise InvalidArgument(f"{local} would be sent as {name!r}, which {problem}")
        if name in named:
            raise InvalidArgument(f"{named[name]} and {local} would both be sent as {name!r}")
        named[name] = local
    return found


def places_of(tracker: TrackerClient, peer_name: str) -> list[str]:
    """The addresses peer_name serves from now (one per serving session); NotFound if none."""
    addresses = [p.address for p in tracker.peers(peer_name)]
    if not addresses:
        raise NotFound(f"peer {peer_name!r} is not online")
    return addresses


def find_peer(tracker: TrackerClient, spec: str) -> tuple[str, str]:
    """(name, address) of the serving peer spec names: an account name, or name@host:port (as
    messages label sources) for one of the places an account serves from (a laptop, a desktop).

    When the account is listed at several places and only one of them answers, that one: a peer
    killed and started again on another port is listed at its old place too, until that
    session's lease runs out."""
    name, _, address = spec.partition("@")  # account names hold no '@'
    serving = places_of(tracker, name)
    if address:
        if address not in serving:
            raise NotFound(f"peer {name!r} does not serve at {address}; it serves at {', '.join(serving)}")
        return name, address
    if len(serving) > 1:
        answering = [a for a, status in peer_statuses(tracker, name, serving) if not isinstance(status, Exception)]
        if len(answering) == 1:
            return name, answering[0]
        places = ", ".join(f"{name}@{a}" for a in answering or serving)
        raise FailedPrecondition(f"{name} serves from {len(answering or serving)} places: {places}; name one of them")
    return name, serving[0]


def push(
    tracker: TrackerClient,
    path: Path,
    peer_name: str,
    name: str | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    stall_seconds: float = STALL_SECONDS,
    address: str | None = None,
    channels: PeerChannels | None = None,
    throttle: Throttle | None = None,  # the rate it may be sent at
    cancel: threading.Event | None = None,  # set: stop sending (the receiver keeps what it verified)
    stream: UploadStream | None = None,  # an Upload stream to the peer, kept open for more files
) -> UploadResult:
    """Upload the file at path to peer_name (at address, if known, else as find_peer finds it;
    through channels, if given; on stream, if given, else on a stream of its own);
    only the chunks it does not hold yet are sent.

    A receiver that takes nothing and says nothing for stall_seconds (frozen, or its network gone
    without a reset) is given up on; a rerun resumes. One serving all the transfers it allows is
    asked again until one ends (students handing in their work at the deadline), as a get does."""
    if channels is None:
        with closing(PeerChannels(tracker.tls)) as own_channels:
            return push(
                tracker, path, peer_name, name, on_progress, stall_seconds, address, own_channels, throttle, cancel, stream
            )
    cancel = cancel or threading.Event()
    if not path.is_file():
        raise InvalidArgument(f"{path} is not a readable file")
    hashed = _version(path)
    manifest = Manifest.from_hashes(chunking.hash_file(path))
    own: UploadStream | None = None
    if stream is None:
        if address is None:
            peer_name, address = find_peer(tracker, peer_name)
        stream = own = upload_stream(tracker, peer_name, address, channels, stall_seconds)
    wait = BusyWait()
    try:
        while True:
            try:
                return stream.send(path, manifest, name or path.name, on_progress, throttle, cancel)
            except DataLoss:  # the receiver found a chunk unlike the offer: as a rule, the file changed
                if _version(path) != hashed:
                    raise FailedPrecondition(
                        f"{path} changed while it was being sent; send it once nothing writes to it"
                    ) from None
                raise
            except Busy as busy:  # as many transfers under way as it allows: wait for one to end, as a get does
                if (seconds := wait.next(busy.retry_after)) is None:
                    raise
                if on_progress:
                    on_progress(Progress(manifest.size, 0, 0, 0, busy_sources=1, place=busy.place))
                if cancel.wait(seconds):
                    raise Cancelled("stopped; a rerun sends only what is missing") from None
    finally:
        if own is not None:
            own.close()


def upload_stream(
    tracker: TrackerClient, peer_name: str, address: str, channels: PeerChannels, stall_seconds: float
) -> UploadStream:
    """An Upload stream to peer_name at address, for push() to send file after file on."""
    return UploadStream(connect(tracker, peer_name, address, channels), stall_seconds)


def _version(path: Path) -> tuple[int, int, int] | None:
    """What changes when a file is written to: its size, mtime and inode (None: it is gone)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns, st.st_ino
