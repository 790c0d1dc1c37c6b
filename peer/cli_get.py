"""`p2p-peer get`: names resolved at the tracker, then each file fetched from all its sources, to
a path, a folder, or standard output."""

from __future__ import annotations

import argparse
import errno
import os
import sys
import threading
from pathlib import Path

from p2p_common.errors import P2PError, ResourceExhausted, error_text
from p2p_common.names import name_problem
from peer.cli_args import tracker_client
from peer.downloader import DownloadResult
from peer.progress import BatchProgress, ProgressBar, human_bytes
from peer.scratch import no_room_to_stage
from peer.throttle import Throttle
from peer.tracker_client import RemoteFile, TrackerClient


def cmd_get(args: argparse.Namespace) -> int:
    from peer.transfers import resolve, resolve_all

    if args.output == "-" and sys.stdout.isatty():  # as curl does: a file's bytes would garble the terminal
        raise P2PError("not writing a file to the terminal: redirect standard output (-o - | ..., -o - > FILE)")
    if args.output == "-" and len(args.files) > 1:
        raise P2PError(f"-o - writes one file to standard output, not {len(args.files)}")
    client = tracker_client(args)
    try:
        # every spec is resolved before any byte moves: a typo in the third name fails at once
        if args.all:
            found = [r for spec in args.files for r in resolve_all(client, spec, peer=args.peer)]
            # each in its folders, under every name it matched (identical files of one folder)
            chosen = sorted(((r, name) for r in found for name in r.matched_names or (r.name,)), key=lambda c: c[1])
        else:
            chosen = [(r, r.name.rsplit("/", 1)[-1]) for r in (resolve(client, spec, args.peer) for spec in args.files)]
        throttle = Throttle(args.max_rate) if args.max_rate else None  # one cap for all the files
        if args.output == "-":
            if len({r.sha256 for r, _ in chosen}) > 1:
                raise P2PError(f"-o - writes one file to standard output; {args.files[0]!r} matches {len(chosen)}")
            _get_to_stdout(client, chosen[0][0], args, throttle)
            return 0
        targets = _destinations(args.output, chosen)
        if len(targets) == 1:
            _get_one(client, *targets[0], args, throttle)
            return 0
        failed = _get_many(client, targets, args, throttle)
    finally:
        client.logout()
    if failed:
        print(f"p2p-peer get: {failed} of {len(targets)} files failed", file=sys.stderr)
    return 1 if failed else 0


def _get_one(client: TrackerClient, remote: RemoteFile, dest: Path, args: argparse.Namespace, throttle: Throttle | None) -> None:
    from peer.transfers import fetch

    bar = ProgressBar(dest.name)
    try:
        result = fetch(client, remote, dest, bar.on_download, args.force, args.stall_timeout, throttle)
    finally:
        bar.close()
    print(_fetched_line(remote, result), flush=True)


def _get_to_stdout(client: TrackerClient, remote: RemoteFile, args: argparse.Namespace, throttle: Throttle | None) -> None:
    """remote to standard output, each chunk once verified and in file order; the file itself is
    staged in a temporary folder (removed after), as there is nowhere to resume it into."""
    import shutil

    from peer.chunk_store import staging_paths
    from peer.in_order_output import InOrderOutput
    from peer.scratch import scratch_folder
    from peer.transfers import fetch

    with scratch_folder() as folder:
        dest = folder / "download"
        cancel = threading.Event()  # set when the reader goes away
        out = InOrderOutput(staging_paths(dest, remote.sha256)[0], remote.size, remote.chunk_size, sys.stdout.fileno(), cancel)
        bar = ProgressBar(remote.name.rsplit("/", 1)[-1])
        try:
            result = fetch(client, remote, dest, bar.on_download, False, args.stall_timeout, throttle, cancel, on_held=out.held)
            out.close()  # the rest of the file; raises BrokenPipeError if the reader left
        except BaseException as exc:
            out.abandon()
            if out.broken:  # the reader left (`| head`): the download stopped for it
                raise BrokenPipeError(errno.EPIPE, "standard output closed") from None
            if isinstance(exc, ResourceExhausted) and shutil.disk_usage(folder).free < remote.size:
                raise no_room_to_stage(f"the {human_bytes(remote.size)} file") from None
            raise
        finally:
            bar.close()
    print(_fetched_line(remote, result, "standard output"), file=sys.stderr, flush=True)


def _get_many(
    client: TrackerClient, targets: list[tuple[RemoteFile, Path]], args: argparse.Namespace, throttle: Throttle | None
) -> int:
    """Several files, args.jobs at a time; a line for each as it ends. The number that failed."""
    from peer.transfers import fetch_many

    display = BatchProgress(len(targets), sum(remote.size for remote, _ in targets))
    failed = 0
    try:
        for ended in fetch_many(client, targets, args.jobs, display.on_download, args.force, args.stall_timeout, throttle):
            if ended.result is not None:
                display.ended(ended.dest, ended.remote.size, _fetched_line(ended.remote, ended.result))
                continue
            failed += 1
            text = error_text(ended.error) if ended.error else "failed"
            line = f"p2p-peer get: {text if str(ended.dest) in text else f'{ended.dest}: {text}'}"
            display.ended(ended.dest, ended.remote.size, line, sys.stderr)
    finally:
        display.close()
    return failed


def _fetched_line(remote: RemoteFile, result: DownloadResult, shown_as: str = "") -> str:
    """The line that reports a fetched file (written to shown_as, its path unless given)."""
    where = shown_as or result.path
    if result.already_there:
        return f"{where}: already up to date (sha256 {remote.sha256})"
    sources = ", ".join(f"{k.split('@')[0]}:{v}" for k, v in sorted(result.per_source.items())) or "none needed"
    # already here: from a run cut short, an earlier version staged there, or the file it replaces
    reused = f"; {result.chunks_reused} already here" if result.chunks_reused else ""
    dropped = "".join(f"; dropped {k.split('@')[0]}: {why}" for k, why in sorted(result.dropped.items()))
    return f"{where}: {human_bytes(result.size)} sha256 {remote.sha256} verified (chunks from {sources}{reused}{dropped})"


def _destinations(output: str | None, chosen: list[tuple[RemoteFile, str]]) -> list[tuple[RemoteFile, Path]]:
    """Where each chosen file goes. -o as cp and curl read it: a directory (existing, spelled with
    a trailing slash, or because several files go there) takes each file's name; anything else
    is the one file's path. Names come from the tracker, so they are checked as a share checks them."""
    for _, name in chosen:
        if problem := name_problem(name):
            raise P2PError(f"the tracker named a file {name!r}, which {problem}")
    into_dir = len(chosen) > 1 or (output is not None and (output.endswith(("/", os.sep)) or Path(output).is_dir()))
    if output and not into_dir:
        return [(chosen[0][0], Path(output))]
    base = Path(output) if output else Path.cwd()
    targets: dict[Path, RemoteFile] = {}
    for remote, name in chosen:
        dest = base / name
        if dest in targets and targets[dest].sha256 != remote.sha256:
            raise P2PError(f"two different files would be written to {dest}: name them one at a time with -o")
        targets[dest] = remote
    return [(remote, dest) for dest, remote in targets.items()]
