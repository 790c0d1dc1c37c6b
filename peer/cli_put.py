"""`p2p-peer put`: files, folders or standard input uploaded to a named peer."""

from __future__ import annotations

import argparse
import errno
import sys
import threading
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

from p2p_common.errors import P2PError, error_text
from p2p_common.wording import counted
from peer.cli_args import tracker_client
from peer.downloader import Progress
from peer.peer_client import PeerChannels
from peer.progress import BatchProgress, ProgressBar, human_bytes
from peer.scratch import no_room_to_stage
from peer.throttle import Throttle
from peer.tracker_client import TrackerClient
from peer.upload_stream import UploadStream


def cmd_put(args: argparse.Namespace) -> int:
    from peer.transfers import files_to_send, find_peer

    def skipped(path: Path, why: str) -> None:
        print(f"p2p-peer put: not sending {path}: {why}", file=sys.stderr)

    if "-" in args.files:
        return _put_standard_input(args)
    sending = files_to_send([Path(p) for p in args.files], args.as_name, skipped)  # a typo fails before any login
    client = tracker_client(args)
    throttle = Throttle(args.max_rate) if args.max_rate else None  # one cap for all the files
    channels = PeerChannels(client.tls)  # one connection to the receiver for all the files
    try:
        peer = find_peer(client, args.to)
        if len(sending) == 1:
            print(_put_one(client, *sending[0], peer, args, None, channels, throttle, None))
            return 0
        return _put_many(client, sending, peer, args, channels, throttle)
    finally:
        channels.close()
        client.logout()


def _put_standard_input(args: argparse.Namespace) -> int:
    """`tar c dir | p2p-peer put - --as dir.tar --to PEER`. An upload offers its size and sha256
    before any chunk, so the bytes are staged in a temporary folder first (removed after)."""
    import shutil

    from peer.scratch import scratch_folder
    from peer.transfers import files_to_send, find_peer

    if args.files != ["-"] or not args.as_name:
        raise P2PError("put - sends standard input as one file, named with --as (tar c d | p2p-peer put - --as d.tar --to PEER)")
    if sys.stdin.isatty():
        raise P2PError("put - reads the file from standard input: pipe it in (... | p2p-peer put - --as NAME --to PEER)")
    with scratch_folder() as folder:
        staged = folder / "stdin"
        try:
            with open(staged, "wb") as f:
                shutil.copyfileobj(sys.stdin.buffer, f, 1 << 20)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise no_room_to_stage(f"standard input ({human_bytes(staged.stat().st_size)} read)") from None
            raise
        [(path, name)] = files_to_send([staged], args.as_name)
        client = tracker_client(args)
        channels = PeerChannels(client.tls)
        throttle = Throttle(args.max_rate) if args.max_rate else None
        try:
            peer = find_peer(client, args.to)
            print(_put_one(client, path, name, peer, args, None, channels, throttle, None, "standard input"))
        finally:
            channels.close()
            client.logout()
    return 0


def _put_many(
    client: TrackerClient,
    sending: list[tuple[Path, str]],
    peer: tuple[str, str],
    args: argparse.Namespace,
    channels: PeerChannels,
    throttle: Throttle | None,
) -> int:
    """--jobs files at once (one after another, each cost the round trips of its upload: 2,000
    photos took 17 s), each job sending file after file on an Upload stream of its own; a line
    for each as it ends, and one that fails does not stop the others."""
    from peer.jobs import each_at_once
    from peer.transfers import upload_stream

    sizes = {path: path.stat().st_size for path, _ in sending}
    display = BatchProgress(len(sending), sum(sizes.values()))
    cancel = threading.Event()  # set on Ctrl-C: the uploads under way stop, the receiver keeps their chunks
    failed = 0
    per_job = threading.local()
    streams: list[UploadStream] = []

    def one(item: tuple[Path, str]) -> str:
        if (stream := getattr(per_job, "stream", None)) is None:
            stream = per_job.stream = upload_stream(client, *peer, channels, args.stall_timeout)
            streams.append(stream)
        return _put_one(client, *item, peer, args, display, channels, throttle, cancel, stream=stream)

    try:
        with closing(each_at_once(sending, args.jobs, one, cancel)) as outcomes:
            for (path, _), outcome in outcomes:
                if isinstance(outcome, Exception):
                    failed += 1
                    display.ended(path, sizes[path], f"p2p-peer put: {path}: {error_text(outcome)}", sys.stderr)
                else:
                    display.ended(path, sizes[path], outcome)
    finally:
        for stream in streams:
            stream.close()
        display.close()
    if failed:
        print(f"p2p-peer put: {failed} of {len(sending)} files failed", file=sys.stderr)
    return 1 if failed else 0


def _put_one(
    client: TrackerClient,
    path: Path,
    name: str,
    peer: tuple[str, str],  # (name, address)
    args: argparse.Namespace,
    display: BatchProgress | None,
    channels: PeerChannels,
    throttle: Throttle | None,
    cancel: threading.Event | None,
    shown_as: str = "",  # what the result line calls the file (its path unless given)
    stream: UploadStream | None = None,  # to send it on, kept open for more files
) -> str:
    """Upload one file, drawing its own bar unless it is one of several; its result line."""
    from peer.transfers import push

    bar: ProgressBar | None = None
    report: Callable[[Progress], None]
    if display is None:
        bar = ProgressBar(path.name)
        report = bar.on_download
    else:
        report = display.on_download(path)
    try:
        result = push(client, path, peer[0], name, report, args.stall_timeout, peer[1], channels, throttle, cancel, stream)
    finally:
        if bar is not None:
            bar.close()
    what = f"{human_bytes(result.size)} sha256 {result.sha256}"
    shown = shown_as or path
    if result.already_there:
        return f"{args.to} already has {shown} as {result.name}: {what}"
    skipped = result.chunks_skipped
    resumed = f", {counted(skipped, 'chunk')} already there" if skipped else ""
    return f"uploaded {shown} to {args.to} as {result.name}: {what}{resumed}"
