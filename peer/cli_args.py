"""The p2p-peer command line: its flags, the environment variables behind them, and what they
stand for (the password, the tracker session, the share filter)."""

from __future__ import annotations

import argparse
import getpass
import os
import re

from p2p_common.errors import P2PError
from p2p_common.flags import accept_after_command
from p2p_common.names import split_host_port, url_hint
from p2p_common.passwords import ask_password, read_password_file
from p2p_common.rpc_log import add_log_level_flag
from p2p_common.tls import ClientTls, add_server_tls_flags
from peer.config import KEEP_PARTIAL_SECONDS
from peer.share_filter import ShareFilter
from peer.throttle import MIN_RATE
from peer.tracker_client import TrackerClient


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


def share_filter(args: argparse.Namespace) -> ShareFilter:
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
    search.add_argument("--peer", default="", metavar="NAME", help="only what this peer (an account name) shares: browse it")
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
    get.add_argument(
        "--peer",
        default="",
        metavar="NAME",
        help="only files this peer (an account name) shares, by its names (fetched from every peer that has them)",
    )
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
    peers = sub.add_parser("peers", help="list the peers online now")
    peers.add_argument("--json", action="store_true", help="print a JSON list (one object per serving session)")
    status = sub.add_parser("status", help="what a serving peer shares and serves now")
    status.add_argument("peer", help="the serving peer's account name")
    status.add_argument("--json", action="store_true", help="print a JSON list (one object per serving session)")
    for command in sub.choices.values():
        accept_after_command(_add_account_flags, command)
    return parser


def password(args: argparse.Namespace) -> str:
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


def tracker_client(args: argparse.Namespace) -> TrackerClient:
    client = TrackerClient(args.tracker, args.name, password(args), tls=ClientTls.load(args.tls_ca))
    client.login()
    client.keep_alive()  # until logout: the caller's finally
    return client
