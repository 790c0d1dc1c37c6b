"""`p2p-peer`: serve a share, search, get, put, ls and peers; errors are one line and exit 1."""

from __future__ import annotations

import argparse
import errno
import getpass
import json
import logging
import os
import re
import signal
import sys
import threading
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

from p2p.v1.peer_pb2 import GetStatusResponse
from p2p_common.errors import P2PError, ResourceExhausted, error_text
from p2p_common.flags import accept_after_command
from p2p_common.malloc import tune_malloc
from p2p_common.names import name_problem, split_host_port, url_hint
from p2p_common.passwords import ask_password, read_password_file
from p2p_common.rpc_log import add_log_level_flag, setup_logging
from p2p_common.tls import ClientTls, add_server_tls_flags
from peer.config import KEEP_PARTIAL_SECONDS, PeerConfig
from peer.downloader import DownloadResult, Progress
from peer.peer_client import PeerChannels
from peer.progress import BatchProgress, ProgressBar, counted, human_bytes
from peer.share_filter import ShareFilter
from peer.terminal import display_width, pad
from peer.throttle import MIN_RATE, Throttle
from peer.tracker_client import RemoteFile, TrackerClient

log = logging.getLogger("p2p.peer")


def _env(name: str, default: str) -> str:
    """The flag's default from the environment, as a string: argparse converts it with the flag's
    type, so a bad value is a usage error naming the flag, not a traceback before any parsing."""
    return os.environ.get(name, default)


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def byte_size(text: str) -> int:
    """A byte count: 1048576, 64K, 50M, 16G (binary units; a trailing B or iB is allowed)."""
    match = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)(?:I?B)?\s*", text.upper())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a byte count (like 1048576, 64K, 50M or 16G)")
    return int(match[1]) * _UNITS[match[2]]


def _positive_int(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def _rate_cap(text: str) -> int:
    """A byte rate: 0 for none, else at least MIN_RATE (a slower cap would look like a stall)."""
    value = byte_size(text)
    if 0 < value < MIN_RATE:
        raise argparse.ArgumentTypeError(f"{text!r} is below the smallest rate cap, {MIN_RATE // 1024}K per second")
    return value


def _host_port(text: str) -> str:
    """host:port, as the tracker's address."""
    parts = split_host_port(text)
    if parts is None or not parts[0] or parts[1] == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not host:port with a port of 1-65535{url_hint(text)}")
    return text


def _advertised(text: str) -> str:
    """--advertise: host:port, or empty for the listen address (refused here, not at the first
    login, which may come much later when the tracker is down at start)."""
    return _host_port(text) if text else text


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds above 0")
    return value


def add_transfer_flags(command: argparse.ArgumentParser, done: str, stalled: str, rate: str) -> None:
    """get's and put's --jobs, --stall-timeout and --max-rate, worded for each."""
    command.add_argument(
        "-j",
        "--jobs",
        type=_positive_int,
        default=_env("P2P_JOBS", "4"),
        help=f"files {done} at once when there are several (4) [P2P_JOBS]",
    )
    command.add_argument(
        "--stall-timeout",
        type=_positive_seconds,
        default=_env("P2P_STALL_TIMEOUT", "60"),
        help=f"seconds {stalled} [P2P_STALL_TIMEOUT]",
    )
    command.add_argument(
        "--max-rate",
        type=_rate_cap,
        default=_env("P2P_MAX_RATE", "0"),
        help=f"{rate} (50M...; at least 64K; 0: no limit) [P2P_MAX_RATE]",
    )


def _add_account_flags(parser: argparse.ArgumentParser) -> None:
    """The options of every command: where the tracker is, who logs in, TLS, logging."""
    parser.add_argument(
        "--tracker", type=_host_port, default=_env("P2P_TRACKER", "127.0.0.1:50051"), help="tracker host:port [P2P_TRACKER]"
    )
    parser.add_argument("--name", default=_env("P2P_NAME", getpass.getuser()), help="account name [P2P_NAME]")
    parser.add_argument("--password", default=_env("P2P_PASSWORD", ""), help="account password [P2P_PASSWORD]")
    parser.add_argument(
        "--password-file",
        default=_env("P2P_PASSWORD_FILE", ""),
        help="read the password from this file's first line (a Docker or systemd secret) [P2P_PASSWORD_FILE]",
    )
    parser.add_argument(
        "--tls-ca",
        default=_env("P2P_TLS_CA", ""),
        help="PEM CA bundle: dial the tracker and peers over TLS, trusting these CAs [P2P_TLS_CA]",
    )
    add_log_level_flag(parser, "warning")


def _add_share_filter_flags(parser: argparse.ArgumentParser) -> None:
    """serve's and ls's --share-hidden and --exclude (see peer.share_filter)."""
    parser.add_argument(
        "--share-hidden",
        action="store_true",
        default=_env_flag("P2P_SHARE_HIDDEN"),
        help="share hidden files and folders too (.ssh, .env, .git...) [P2P_SHARE_HIDDEN=1]",
    )
    parser.add_argument(
        "--exclude",
        action="append",
        metavar="PATTERN",
        help="leave out files and folders matching PATTERN (repeatable): a name at any depth (*.tmp,"
        " node_modules) or, with a /, a path from the share's root (photos/raw, /build) [P2P_EXCLUDE, comma-separated]",
    )


def _share_filter(args: argparse.Namespace) -> ShareFilter:
    patterns = args.exclude if args.exclude is not None else _env("P2P_EXCLUDE", "").split(",")
    return ShareFilter.of(args.share_hidden, patterns)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="p2p-peer", description="Share files with peers through a p2p tracker.")
    _add_account_flags(parser)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="share a directory and serve it to other peers")
    serve.add_argument("--share", default=_env("P2P_SHARE", "./share"), help="directory to share [P2P_SHARE]")
    serve.add_argument("--listen", default=_env("P2P_LISTEN", "0.0.0.0:50052"), help="host:port to serve on [P2P_LISTEN]")
    serve.add_argument(
        "--advertise",
        type=_advertised,
        default=_env("P2P_ADVERTISE", ""),
        help="host:port other peers dial (default: the listen address) [P2P_ADVERTISE]",
    )
    serve.add_argument(
        "--allow-uploads",
        action="store_true",
        default=_env_flag("P2P_ALLOW_UPLOADS"),
        help="accept files pushed by other peers [P2P_ALLOW_UPLOADS=1]",
    )
    serve.add_argument(
        "--max-upload",
        type=byte_size,
        default=_env("P2P_MAX_UPLOAD", "16G"),
        help="largest upload accepted, in bytes (64K, 50M, 16G...) [P2P_MAX_UPLOAD]",
    )
    serve.add_argument(
        "--max-serve-rate",
        type=byte_size,
        default=_env("P2P_MAX_SERVE_RATE", "0"),
        help="bytes per second all downloads from this peer may take together (50M...); 0: no limit [P2P_MAX_SERVE_RATE]",
    )
    serve.add_argument(
        "--max-transfers",
        type=int,
        default=_env("P2P_MAX_TRANSFERS", "16"),
        help="downloads and uploads served at once; more are refused until one ends (a get asks again) [P2P_MAX_TRANSFERS]",
    )
    _add_share_filter_flags(serve)
    add_server_tls_flags(serve)
    serve.add_argument("--rescan", type=float, default=_env("P2P_RESCAN", "2"), help="seconds between share rescans [P2P_RESCAN]")
    serve.add_argument(
        "--keep-partial",
        type=float,
        default=_env("P2P_KEEP_PARTIAL", str(KEEP_PARTIAL_SECONDS)),
        help="seconds an unfinished upload or download in the share is kept untouched before it is removed"
        " (a week); 0: for ever [P2P_KEEP_PARTIAL]",
    )

    search = sub.add_parser("search", help="find files shared by live peers")
    search.add_argument("pattern", nargs="?", default="", help="substring or glob (*, ?, [...]) of the name; empty: everything")
    search.add_argument("--sha256", default="", help="only contents whose sha256 starts with these (8 or more) digits")
    search.add_argument("--limit", type=_positive_int, default=1000, help="show at most this many matches (1000)")
    search.add_argument("--json", action="store_true", help="print a JSON list instead of a table")

    get = sub.add_parser("get", help="download a file from every live peer that has it")
    get.add_argument(
        "files", nargs="+", metavar="FILE", help="a shared name, a sha256 or its first 8+ digits (as search shows them)"
    )
    get.add_argument(
        "-o",
        "--output",
        help="file, or directory (an existing one, one ending in /, or for several files) to write to (default: "
        "here); -: standard output, in order as chunks are verified (staged in $TMPDIR meanwhile)",
    )
    get.add_argument(
        "--all", action="store_true", help="fetch every file each pattern matches, in its folders (a glob: 'album/*')"
    )
    get.add_argument("--force", action="store_true", help="replace a different file already at the destination")
    add_transfer_flags(
        get,
        "fetched",
        "a source may owe a chunk and send nothing before it is dropped",
        "bytes per second all sources together may deliver",
    )

    put = sub.add_parser("put", help="upload files or folders to a named peer")
    put.add_argument(
        "files",
        nargs="+",
        metavar="PATH",
        help="a local file, a folder (sent with its files in their folders), or - for standard input (named by --as)",
    )
    put.add_argument(
        "--to", required=True, help="the receiving peer's account name (NAME@HOST:PORT when it serves from several places)"
    )
    put.add_argument(
        "--as",
        dest="as_name",
        help="name for one file or folder; with several, the folder they go into (default: their own names)",
    )
    add_transfer_flags(
        put,
        "sent",
        "the receiver may take nothing before the upload stops",
        "bytes per second the files may be sent at, all together",
    )

    ls = sub.add_parser("ls", help="list what a directory would share, with sizes and sha256")
    ls.add_argument("--share", default=_env("P2P_SHARE", "./share"), help="directory [P2P_SHARE]")
    _add_share_filter_flags(ls)
    sub.add_parser("peers", help="list the peers online now")
    status = sub.add_parser("status", help="what a serving peer shares and serves now")
    status.add_argument("peer", help="the serving peer's account name")
    status.add_argument("--json", action="store_true", help="print a JSON list (one object per serving session)")
    for command in sub.choices.values():
        accept_after_command(_add_account_flags, command)
    return parser


def _password(args: argparse.Namespace) -> str:
    """--password (P2P_PASSWORD); else the first line of --password-file (P2P_PASSWORD_FILE), as
    Docker and systemd hand out secrets; else asked for on the terminal, as ssh and psql do (a
    password given on the command line shows in `ps` and the shell's history)."""
    if args.password:
        return str(args.password)
    if args.password_file:
        return read_password_file(args.password_file)
    password = ask_password(f"password for {args.name}: ")
    if password:
        return password
    raise P2PError("a password is needed: --password, --password-file, P2P_PASSWORD or P2P_PASSWORD_FILE")


def _client(args: argparse.Namespace) -> TrackerClient:
    client = TrackerClient(args.tracker, args.name, _password(args), tls=ClientTls.load(args.tls_ca))
    client.login()
    client.keep_alive()  # until logout: the caller's finally
    return client


def cmd_serve(args: argparse.Namespace) -> int:
    from p2p_common.server import wait_for_stop_signal  # the server stack loads only for serve
    from peer.node import start_peer

    config = PeerConfig(
        tracker=args.tracker,
        name=args.name,
        password=_password(args),
        share=Path(args.share),
        share_filter=_share_filter(args),
        listen=args.listen,
        advertise=args.advertise,
        allow_uploads=args.allow_uploads,
        max_upload_bytes=args.max_upload,
        max_transfers=args.max_transfers,
        max_serve_rate=args.max_serve_rate,
        rescan_seconds=args.rescan,
        keep_partial_seconds=args.keep_partial,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_ca=args.tls_ca,
    )
    created = "" if config.share.exists() else " (a new folder: it did not exist)"
    node = start_peer(config)
    cap = f", at most {human_bytes(config.max_serve_rate)}/s" if config.max_serve_rate else ""
    listed = f", listed as {node.tracker.listed_as}" if node.tracker.listed_as else ""
    serving = f"serving {node.share.root}{created} on port {node.port} as {args.name}{cap}{listed}"
    # one write: log lines from the serving threads go to the same terminal or file (stderr), and
    # print() writes its pieces apart, so one could land in the middle of this line
    sys.stdout.write(f"{serving} (indexing it in the background)\n")
    sys.stdout.flush()
    wait_for_stop_signal()
    node.stop()
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    client = _client(args)
    try:
        found = client.query(pattern=args.pattern, sha256=args.sha256.lower(), limit=args.limit + 1)
    finally:
        client.logout()
    if len(found) > args.limit:
        found = found[: args.limit]
        print(f"(the first {args.limit} matches; narrow the pattern or raise --limit)", file=sys.stderr)
    found.sort(key=lambda f: (f.name.lower(), f.sha256))  # the tracker pages in sha256 order; people read names
    if args.json:
        rows = [
            {
                "name": f.name,
                "size": f.size,
                "sha256": f.sha256,
                "peers": [{"name": s.peer_name, "address": s.address, "partial": s.partial} for s in f.sources],
            }
            for f in found
        ]
        print(json.dumps(rows, indent=2))
        return 0
    if not found:
        print("no matches")
        return 0
    width = max(display_width(f.name) for f in found)
    print(f"{'NAME':<{width}}  {'SIZE':>10}  {'SHA256':<12}  PEERS")
    for f in found:
        partial = sum(s.partial for s in f.sources)  # still downloading it: they hold some chunks
        peers = f"{len(f.sources) - partial}" + (f" (+{partial} downloading)" if partial else "")
        print(f"{pad(f.name, width)}  {human_bytes(f.size):>10}  {f.sha256[:12]}  {peers}")
    return 0


def cmd_get(args: argparse.Namespace) -> int:
    from peer.transfers import resolve, resolve_all

    if args.output == "-" and sys.stdout.isatty():  # as curl does: a file's bytes would garble the terminal
        raise P2PError("not writing a file to the terminal: redirect standard output (-o - | ..., -o - > FILE)")
    if args.output == "-" and len(args.files) > 1:
        raise P2PError(f"-o - writes one file to standard output, not {len(args.files)}")
    client = _client(args)
    try:
        # every spec is resolved before any byte moves: a typo in the third name fails at once
        if args.all:
            found = [r for spec in args.files for r in resolve_all(client, spec)]
            # each in its folders, under every name it matched (identical files of one folder)
            chosen = sorted(((r, name) for r in found for name in r.matched_names or (r.name,)), key=lambda c: c[1])
        else:
            chosen = [(r, r.name.rsplit("/", 1)[-1]) for r in (resolve(client, spec) for spec in args.files)]
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
                raise _no_room_to_stage(f"the {human_bytes(remote.size)} file") from None
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


def cmd_put(args: argparse.Namespace) -> int:
    from peer.transfers import files_to_send, find_peer

    def skipped(path: Path, why: str) -> None:
        print(f"p2p-peer put: not sending {path}: {why}", file=sys.stderr)

    if "-" in args.files:
        return _put_standard_input(args)
    sending = files_to_send([Path(p) for p in args.files], args.as_name, skipped)  # a typo fails before any login
    client = _client(args)
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
                raise _no_room_to_stage(f"standard input ({human_bytes(staged.stat().st_size)} read)") from None
            raise
        [(path, name)] = files_to_send([staged], args.as_name)
        client = _client(args)
        channels = PeerChannels(client.tls)
        throttle = Throttle(args.max_rate) if args.max_rate else None
        try:
            peer = find_peer(client, args.to)
            print(_put_one(client, path, name, peer, args, None, channels, throttle, None, "standard input"))
        finally:
            channels.close()
            client.logout()
    return 0


def _no_room_to_stage(what: str) -> ResourceExhausted:
    import tempfile

    return ResourceExhausted(f"no room in {tempfile.gettempdir()} to stage {what}: point TMPDIR at a folder with more")


def _put_many(
    client: TrackerClient,
    sending: list[tuple[Path, str]],
    peer: tuple[str, str],
    args: argparse.Namespace,
    channels: PeerChannels,
    throttle: Throttle | None,
) -> int:
    """--jobs files at once (one after another, each cost the round trips of its upload: 2,000
    photos took 17 s); a line for each as it ends, and one that fails does not stop the others."""
    from peer.jobs import each_at_once

    sizes = {path: path.stat().st_size for path, _ in sending}
    display = BatchProgress(len(sending), sum(sizes.values()))
    cancel = threading.Event()  # set on Ctrl-C: the uploads under way stop, the receiver keeps their chunks
    failed = 0

    def one(item: tuple[Path, str]) -> str:
        return _put_one(client, *item, peer, args, display, channels, throttle, cancel)

    try:
        with closing(each_at_once(sending, args.jobs, one, cancel)) as outcomes:
            for (path, _), outcome in outcomes:
                if isinstance(outcome, Exception):
                    failed += 1
                    display.ended(path, sizes[path], f"p2p-peer put: {path}: {error_text(outcome)}", sys.stderr)
                else:
                    display.ended(path, sizes[path], outcome)
    finally:
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
        result = push(client, path, peer[0], name, report, args.stall_timeout, peer[1], channels, throttle, cancel)
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


def cmd_ls(args: argparse.Namespace) -> int:
    from peer.share import Share

    share = Share(Path(args.share), share_filter=_share_filter(args))
    try:
        share.scan()
        for f in share.files():
            print(f"{f.manifest.sha256}  {f.manifest.size:>12}  {f.name}")
    finally:
        share.close()
    if share.left_out:  # on stderr: stdout stays the listing, as sha256sum prints it
        print(f"(left out {share.left_out}: {share.filter.describe()})", file=sys.stderr)
    return 0


def cmd_peers(args: argparse.Namespace) -> int:
    client = _client(args)
    try:
        peers = client.peers()
    finally:
        client.logout()
    if not peers:
        print("no peer is online")
    for p in peers:
        print(f"{p.name:<20} {p.address:<24} {counted(p.file_count, 'file')}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from peer.transfers import peer_statuses

    client = _client(args)
    try:
        found = peer_statuses(client, args.peer)
    finally:
        client.logout()
    answered = [(address, s) for address, s in found if not isinstance(s, Exception)]
    failed = [(address, s) for address, s in found if isinstance(s, Exception)]
    for _, error in failed:  # a place that does not answer hides none of those that do
        print(f"p2p-peer status: {error_text(error)}", file=sys.stderr)
    if args.json:
        # every field as a plain number or boolean (protobuf's JSON prints 64-bit numbers as strings)
        rows = [{"address": address, **{f.name: getattr(s, f.name) for f in s.DESCRIPTOR.fields}} for address, s in answered]
        rows += [{"address": address, "error": error_text(error)} for address, error in failed]
        print(json.dumps(rows, indent=2))
    else:
        for address, s in answered:
            _print_status(args.peer, address, s)
    return 1 if failed else 0


def _print_status(peer: str, address: str, s: GetStatusResponse) -> None:
    rate = f"{human_bytes(s.max_serve_rate)}/s" if s.max_serve_rate else "no limit"
    print(f"{peer} at {address}, up {_duration(s.uptime_seconds)}")
    hashing = "" if s.indexed else " (still hashing)"
    partial = f", {s.partial_files} unfinished (downloads or uploads into it)" if s.partial_files else ""
    print(f"  shares     {counted(s.files, 'file')}, {human_bytes(s.bytes)}{hashing}{partial}")
    print(f"  transfers  {s.transfers_active} now, at most {s.transfers_max}; serve rate {rate}")
    print(f"  served     {counted(s.chunks_served, 'chunk')}, {human_bytes(s.bytes_served)}")
    print(f"  uploads    {s.uploads_received} received" + ("" if s.uploads_allowed else " (not accepted)"))


def _duration(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h {rest // 60:02d}m" if hours else f"{rest // 60}m {rest % 60:02d}s"


COMMANDS = {
    "serve": cmd_serve,
    "search": cmd_search,
    "get": cmd_get,
    "put": cmd_put,
    "ls": cmd_ls,
    "peers": cmd_peers,
    "status": cmd_status,
}


class _Terminated(KeyboardInterrupt):
    """SIGTERM (`timeout`, a service manager, `kill`) stops a command as Ctrl-C does: its session
    logged out, its verified chunks kept (unhandled, it killed the command where it stood, and
    its session stayed listed until the lease ran out)."""


def _terminated(signum: int, frame: object) -> None:
    raise _Terminated


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    tune_malloc()
    if args.command != "serve":  # serve stops gracefully on its own
        signal.signal(signal.SIGTERM, _terminated)
    try:
        return COMMANDS[args.command](args)
    except BrokenPipeError:  # `p2p-peer search | head` stopped reading: not an error worth a line
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except (P2PError, ValueError) as exc:
        print(f"p2p-peer {args.command}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"p2p-peer {args.command}: {error_text(exc)}", file=sys.stderr)
        return 1
    except _Terminated:
        print(f"p2p-peer {args.command}: stopped (SIGTERM)", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print(f"p2p-peer {args.command}: interrupted", file=sys.stderr)
        return 130


def run() -> None:
    """The `p2p-peer` command: main(), then exit without tearing the interpreter down.

    With grpc loaded, teardown takes 50-60 ms (a sixth of a `search`) and has nothing left to
    do: every command has closed its files, sessions and threads by the time main returns.
    """
    code = main()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):  # `p2p-peer search | head` closed the pipe
            code = code or 1
    os._exit(code)


if __name__ == "__main__":
    run()
