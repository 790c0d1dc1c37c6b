"""Tracker settings: one frozen dataclass, filled from flags whose defaults come from P2P_* variables."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass

from p2p_common.rpc_log import add_log_level_flag
from p2p_common.tls import add_server_tls_flags


@dataclass(frozen=True)
class TrackerConfig:
    """Everything `p2p-tracker serve` needs."""

    listen: str = "0.0.0.0:50051"
    db: str = "./tracker.db"
    lease_seconds: int = 60
    open_registration: bool = True
    log_level: str = "info"
    max_workers: int = 32
    ticket_seconds: int = 300
    free_failed_logins: int = 5  # wrong passwords (per account and host) before each try must wait
    resume_grace_seconds: float = 20.0  # after a restart, on top of a lease: time for peers to reconnect
    max_files_per_session: int = 2_000_000  # what one peer may publish: bounds the directory it can fill
    tls_cert: str = ""  # PEM certificate chain and key: serve TLS only (p2p_common.tls)
    tls_key: str = ""
    probe_seconds: float = 2.0  # a serving peer's address is tried at login, this long (tracker.reachability); 0: not

    def __post_init__(self) -> None:
        if not 2 <= self.lease_seconds <= 86400:
            raise ValueError(f"lease must be 2-86400 seconds, got {self.lease_seconds}")
        if not 1 <= self.max_workers <= 1024:
            raise ValueError(f"workers must be 1-1024, got {self.max_workers}")
        if self.max_files_per_session < 1:
            raise ValueError(f"max files per session must be at least 1, got {self.max_files_per_session}")
        if not 0 <= self.probe_seconds <= 30:
            raise ValueError(f"probe timeout must be 0-30 seconds, got {self.probe_seconds:g}")


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def add_store_flags(parser: argparse.ArgumentParser) -> None:
    """What the account commands need: the database, and the log level."""
    parser.add_argument("--db", default=os.environ.get("P2P_DB", TrackerConfig().db), help="SQLite file, or :memory: [P2P_DB]")
    add_log_level_flag(parser, TrackerConfig().log_level)


def add_serve_flags(parser: argparse.ArgumentParser) -> None:
    """The serve flags; each default is read from its environment variable."""
    env = os.environ.get
    d = TrackerConfig()
    parser.add_argument("--listen", default=env("P2P_LISTEN", d.listen), help="host:port to serve on [P2P_LISTEN]")
    add_store_flags(parser)
    parser.add_argument(
        "--lease", type=int, default=env("P2P_LEASE", str(d.lease_seconds)), help="session lease in seconds [P2P_LEASE]"
    )
    parser.add_argument(
        "--closed-registration",
        action="store_true",
        default=not _env_bool("P2P_OPEN_REGISTRATION", d.open_registration),
        help="refuse unknown names at login; create accounts with `user add` [P2P_OPEN_REGISTRATION=0]",
    )
    parser.add_argument(
        "--workers", type=int, default=env("P2P_WORKERS", str(d.max_workers)), help="RPC worker threads [P2P_WORKERS]"
    )
    parser.add_argument(
        "--max-files-per-session",
        type=int,
        default=env("P2P_MAX_FILES_PER_SESSION", str(d.max_files_per_session)),
        help="files one peer may publish; a SendIndex past it is refused whole [P2P_MAX_FILES_PER_SESSION]",
    )
    parser.add_argument(
        "--probe-timeout",
        type=float,
        default=env("P2P_PROBE_TIMEOUT", str(d.probe_seconds)),
        help="seconds to try a TCP connection to a serving peer's address at its login, to warn it when others"
        " cannot reach it either; 0: no try [P2P_PROBE_TIMEOUT]",
    )
    add_server_tls_flags(parser)


def config_from_args(args: argparse.Namespace) -> TrackerConfig:
    return TrackerConfig(
        listen=args.listen,
        db=args.db,
        lease_seconds=args.lease,
        open_registration=not args.closed_registration,
        log_level=args.log_level,
        max_workers=args.workers,
        max_files_per_session=args.max_files_per_session,
        probe_seconds=args.probe_timeout,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
    )
