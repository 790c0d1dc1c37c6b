"""`p2p-tracker`: serve the directory, or manage its accounts (`p2p-tracker user ...`)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

from p2p_common.errors import P2PError, error_text
from p2p_common.flags import accept_after_command
from p2p_common.passwords import ask_password, first_line, read_password_file
from p2p_common.rpc_log import setup_logging
from p2p_common.server import wait_for_stop_signal
from p2p_common.wording import counted
from tracker.config import TrackerConfig, add_serve_flags, add_store_flags, config_from_args
from tracker.directory import Directory
from tracker.sqlite_store import SqliteStore
from tracker.store import CannotOpen, NotFound

log = logging.getLogger("p2p.tracker")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="p2p-tracker", description="The p2p directory: who is online and what they share.")
    add_serve_flags(parser)
    sub = parser.add_subparsers(dest="command")
    accept_after_command(add_serve_flags, sub.add_parser("serve", help="serve the directory (the default)"))
    user = sub.add_parser("user", help="manage accounts in the database given by --db")
    user_sub = user.add_subparsers(dest="user_command", required=True)
    for name, text in (("add", "create an account"), ("passwd", "change an account's password")):
        p = user_sub.add_parser(name, help=text)
        p.add_argument("name")
        p.add_argument(
            "--password",
            default=os.environ.get("P2P_PASSWORD"),
            help="the password (else a line of piped standard input, else asked for) [P2P_PASSWORD]",
        )
        p.add_argument(
            "--password-file",
            default=os.environ.get("P2P_PASSWORD_FILE"),
            help="read the password from this file's first line (a Docker or systemd secret) [P2P_PASSWORD_FILE]",
        )
    user_sub.add_parser("list", help="list accounts")
    for name, text in (
        ("disable", "refuse an account's logins and end its sessions; its name stays taken"),
        ("enable", "let a disabled account log in again"),
        ("del", "delete an account and its sessions (under open registration its name can be registered again)"),
    ):
        user_sub.add_parser(name, help=text).add_argument("name")
    for command in user_sub.choices.values():
        accept_after_command(add_store_flags, command)
    backup = sub.add_parser(
        "backup", help="copy the accounts of --db into a new database FILE, safely while the tracker runs (restore: serve it)"
    )
    backup.add_argument("file", metavar="FILE", help="the backup to write (an older one there is replaced)")
    accept_after_command(add_store_flags, backup)
    return parser


def _password(args: argparse.Namespace) -> str:
    """--password; else --password-file's first line; else a line of piped standard input (`echo pw |
    p2p-tracker user add bob`); else asked for on the terminal. The same reader as p2p-peer's."""
    if args.password:
        return str(args.password)
    if args.password_file:
        return read_password_file(args.password_file)
    if not sys.stdin.isatty():
        return first_line(sys.stdin.readline())
    return ask_password(f"password for {args.name}: ")


def _is_new(db: str) -> bool:
    """Whether db is a file still to be made: said at start, as a mistyped --db begins an empty directory."""
    return db != ":memory:" and not os.path.exists(db)


def _no_database(db: str) -> P2PError:
    return P2PError(f"no database at {db} (the tracker, or `user add`, makes one): check --db or P2P_DB")


def run_user_command(args: argparse.Namespace, config: TrackerConfig) -> None:
    new = _is_new(config.db)  # a mistyped --db: only `add` makes a database, and says so
    if new and args.user_command != "add":
        raise _no_database(config.db)
    store = SqliteStore(config.db, accounts_only=True)  # beside a running tracker too
    if new:
        print(f"p2p-tracker: {config.db} did not exist: made a new database there", file=sys.stderr)
    try:
        directory = Directory(store, config)
        if args.user_command == "add":
            directory.add_account(args.name, _password(args))
            print(f"account {args.name} created")
        elif args.user_command == "passwd":
            ended = directory.set_password(args.name, _password(args))
            also = f"; {counted(ended, 'session')} of it ended (their peers must log in with the new password)" if ended else ""
            print(f"password of {args.name} changed{also}")
        elif args.user_command == "list":
            places = _serving_places(store)
            for account in store.accounts():
                notes = ["disabled"] if account.disabled else []
                if account.name in places:
                    notes.append("serving from " + ", ".join(places[account.name]))
                print(f"{account.name}  ({'; '.join(notes)})" if notes else account.name)
        elif args.user_command in ("disable", "enable"):
            ended = store.set_disabled(args.name, args.user_command == "disable")
            also = f"; {counted(ended, 'session')} of it ended" if ended else ""
            print(f"account {args.name} {args.user_command}d{also}")
        elif args.user_command == "del":
            store.delete_account(args.name)
            print(f"account {args.name} deleted")
    finally:
        store.close()


def back_up(args: argparse.Namespace, config: TrackerConfig) -> None:
    if _is_new(config.db):
        raise _no_database(config.db)
    store = SqliteStore(config.db, accounts_only=True)  # beside a running tracker too
    try:
        count = store.back_up_accounts(args.file)
    finally:
        store.close()
    print(
        f"backed up {counted(count, 'account')} of {config.db} to {args.file}"
        " (sessions and shared files are left out: peers publish theirs again when they log in)"
    )


def _serving_places(store: SqliteStore) -> dict[str, list[str]]:
    """The addresses each account serves from now (its live sessions with an address)."""
    places: dict[str, list[str]] = {}
    for peer in store.live_peers(time.time(), limit=1 << 30):  # every one: not a page
        places.setdefault(peer.name, []).append(peer.address)
    return places


def serve(config: TrackerConfig) -> None:
    from tracker.server import start_tracker

    new = ", a new file" if _is_new(config.db) else ""
    tracker = start_tracker(config)
    log.info(
        "tracker serving on port %d (db=%s%s, lease=%ds, registration %s)",
        tracker.port,
        config.db,
        new,
        config.lease_seconds,
        "open" if config.open_registration else "closed",
    )
    wait_for_stop_signal()
    tracker.stop()
    log.info("tracker stopped")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
    except ValueError as exc:
        print(f"p2p-tracker: {exc}", file=sys.stderr)
        return 2
    setup_logging(config.log_level)
    try:
        if args.command == "user":
            run_user_command(args, config)
        elif args.command == "backup":
            back_up(args, config)
        else:
            serve(config)
    except (P2PError, OSError, CannotOpen, NotFound) as exc:
        print(f"p2p-tracker: {error_text(exc)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
