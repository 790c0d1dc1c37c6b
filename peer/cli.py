"""`p2p-peer`: serve a share, search, ls, peers and status here; get and put in cli_get and cli_put,
the flags in cli_args. Whatever a command raises is one line and a non-zero exit, never a traceback."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from pathlib import Path

from p2p.v1.peer_pb2 import GetStatusResponse
from p2p_common.errors import P2PError, error_text
from p2p_common.malloc import tune_malloc
from p2p_common.rpc_log import setup_logging
from p2p_common.wording import counted
from peer.cli_args import build_parser, password, share_filter, tracker_client
from peer.cli_get import cmd_get
from peer.cli_put import cmd_put
from peer.config import PeerConfig
from peer.progress import human_bytes
from peer.terminal import display_width, pad


def cmd_serve(args: argparse.Namespace) -> int:
    from p2p_common.server import wait_for_stop_signal  # the server stack loads only for serve
    from peer.node import start_peer

    config = PeerConfig(
        tracker=args.tracker,
        name=args.name,
        password=password(args),
        share=Path(args.share),
        share_filter=share_filter(args),
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
    from peer.transfers import places_of

    client = tracker_client(args)
    try:
        found = client.query(pattern=args.pattern, sha256=args.sha256.lower(), limit=args.limit + 1, peer=args.peer)
        if args.peer and not found:
            places_of(client, args.peer)  # NotFound when that peer is not online: say so, not "no matches"
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


def cmd_ls(args: argparse.Namespace) -> int:
    from peer.share import Share

    share = Share(Path(args.share), share_filter=share_filter(args))
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
    client = tracker_client(args)
    try:
        peers = client.peers()
    finally:
        client.logout()
    if args.json:
        rows = [
            {"name": p.name, "address": p.address, "files": p.file_count, "reachability_problem": p.reachability_problem}
            for p in peers
        ]
        print(json.dumps(rows, indent=2))
        return 0
    if not peers:
        print("no peer is online")
        return 0
    name_width = max(len("NAME"), *(display_width(p.name) for p in peers))  # columns as wide as their longest
    address_width = max(len("ADDRESS"), *(len(p.address) for p in peers))
    print(f"{'NAME':<{name_width}}  {'ADDRESS':<{address_width}}  FILES")
    for p in peers:
        note = "  (the tracker cannot connect to it)" if p.reachability_problem else ""
        print(f"{pad(p.name, name_width)}  {p.address:<{address_width}}  {counted(p.file_count, 'file')}{note}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from peer.transfers import peer_statuses

    client = tracker_client(args)
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
    left_out = f"; left out {s.left_out} (hidden, or matched by --exclude)" if s.left_out else ""
    print(f"  shares     {counted(s.files, 'file')}, {human_bytes(s.bytes)}{hashing}{partial}{left_out}")
    waiting = f", {counted(s.transfers_waiting, 'account')} waiting for one" if s.transfers_waiting else ""
    print(f"  transfers  {s.transfers_active} now, at most {s.transfers_max}{waiting}; serve rate {rate}")
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
