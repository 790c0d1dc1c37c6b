"""Peer settings: one frozen dataclass; the CLI fills it from flags whose defaults are P2P_* variables."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from p2p_common.options import KEEPALIVE_SECONDS
from peer.share_filter import ShareFilter
from peer.throttle import MIN_RATE

SPARE_WORKERS = 8
KEEP_PARTIAL_SECONDS = 7 * 24 * 3600  # a week: a transfer resumed after a weekend still resumes


@dataclass(frozen=True)
class PeerConfig:
    """What a serving peer needs."""

    tracker: str = "127.0.0.1:50051"
    name: str = "peer"
    password: str = ""
    share: Path = Path("./share")
    share_filter: ShareFilter = field(default_factory=ShareFilter)  # what the share leaves out: hidden files unless asked
    listen: str = "0.0.0.0:50052"
    advertise: str = ""  # host:port others dial; derived from listen when empty
    allow_uploads: bool = False
    max_upload_bytes: int = 1 << 34
    rescan_seconds: float = 2.0
    keep_partial_seconds: float = KEEP_PARTIAL_SECONDS  # an unfinished transfer untouched this long is removed
    max_transfers: int = 16  # Download and Upload streams served at once ("upload slots")
    keepalive_seconds: float = KEEPALIVE_SECONDS  # a caller gone silent loses its slot within 4/3 of this
    max_serve_rate: int = 0  # bytes/s all Download streams together may send; 0: no limit
    tls_cert: str = ""  # PEM certificate chain and key: serve TLS only (p2p_common.tls)
    tls_key: str = ""
    tls_ca: str = ""  # PEM CA bundle: dial the tracker and other peers over TLS

    def __post_init__(self) -> None:
        if not self.password:
            raise ValueError("a password is needed: --password, --password-file, P2P_PASSWORD or P2P_PASSWORD_FILE")
        if self.rescan_seconds <= 0:
            raise ValueError("rescan interval must be positive")
        if self.keep_partial_seconds < 0:
            raise ValueError("keep-partial must be 0 (for ever) or a number of seconds")
        if not 1 <= self.max_transfers <= 1024:
            raise ValueError(f"max transfers must be 1-1024, got {self.max_transfers}")
        if self.max_serve_rate and self.max_serve_rate < MIN_RATE:
            raise ValueError(f"max serve rate must be 0 (no limit) or at least {MIN_RATE} bytes/s, got {self.max_serve_rate}")

    @property
    def max_workers(self) -> int:
        """RPC threads: one per transfer stream, and some always free for health and manifests."""
        return self.max_transfers + SPARE_WORKERS
