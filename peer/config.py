"""Peer settings: one frozen dataclass; the CLI fills it from flags whose defaults are P2P_* variables."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PeerConfig:
    """What a serving peer needs."""

    tracker: str = "127.0.0.1:50051"
    name: str = "peer"
    password: str = ""
    share: Path = Path("./share")
    listen: str = "0.0.0.0:50052"
    advertise: str = ""  # host:port others dial; derived from listen when empty
    allow_uploads: bool = False
    max_upload_bytes: int = 1 << 34
    rescan_seconds: float = 2.0
    max_workers: int = 32

    def __post_init__(self) -> None:
        if not self.password:
            raise ValueError("a password is needed: --password or P2P_PASSWORD")
        if self.rescan_seconds <= 0:
            raise ValueError("rescan interval must be positive")
