"""Optional TLS for every server and channel: a deployment either runs all plaintext or all TLS.

In a TLS deployment one CA (a lab's, a company's) signs a certificate for the tracker and for each
serving peer, naming the host and address others dial; everyone trusts that CA. Passwords and
session tokens then never cross the network in the clear, and a client knows it talks to the
real tracker. Files are PEM, as openssl, step-ca or Let's Encrypt write them.
"""

from __future__ import annotations

import argparse
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc

from p2p_common.errors import InvalidArgument

log = logging.getLogger(__name__)


def _read(path: str, what: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InvalidArgument(f"cannot read the {what} {path}: {exc.strerror or exc}") from None
    if b"-----BEGIN " not in data:
        raise InvalidArgument(f"the {what} {path} is not PEM (no -----BEGIN line)")
    return data


def _stamp(paths: Sequence[str]) -> tuple[tuple[int, int, int], ...]:
    """What changes when a file is rewritten or replaced."""
    return tuple((s.st_ino, s.st_size, s.st_mtime_ns) for s in (os.stat(p) for p in paths))


class ServerTls:
    """This server's identity: its certificate chain and private key, as files that may be renewed.

    Short-lived certificates (step-ca, Let's Encrypt) are replaced every few hours or days: the
    server reads the files again when they change, with no restart and no dropped connection.
    """

    def __init__(self, cert_path: str, key_path: str):
        self._paths = (cert_path, key_path)
        self._lock = threading.Lock()
        self._stamp, self._pair = self._snapshot()
        self._problem = ""  # the last reason a reload failed, logged once

    @classmethod
    def load(cls, cert_path: str, key_path: str) -> ServerTls | None:
        """From PEM files; None when neither is given (plaintext)."""
        if not cert_path and not key_path:
            return None
        if not cert_path or not key_path:
            raise InvalidArgument("TLS needs both a certificate (--tls-cert) and its private key (--tls-key)")
        try:
            return cls(cert_path, key_path)
        except OSError as exc:
            raise InvalidArgument(f"cannot read the TLS file {exc.filename}: {exc.strerror or exc}") from None

    def _snapshot(self) -> tuple[tuple[tuple[int, int, int], ...], tuple[bytes, bytes]]:
        """The files' stamp and (private key, certificate chain), read again if they changed meanwhile."""
        while True:
            before = _stamp(self._paths)
            pair = _read(self._paths[1], "TLS private key"), _read(self._paths[0], "TLS certificate")
            if _stamp(self._paths) == before:
                return before, pair

    def credentials(self) -> grpc.ServerCredentials:
        """gRPC asks before each new connection's handshake whether the identity changed (two stat calls)."""
        return grpc.dynamic_ssl_server_credentials(grpc.ssl_server_certificate_configuration([self._pair]), self._renewed)

    def _renewed(self) -> grpc.ServerCertificateConfiguration | None:
        """The certificate's new configuration if its files changed since last read, else None."""
        with self._lock:
            try:
                if _stamp(self._paths) == self._stamp:
                    return None
                self._stamp, self._pair = self._snapshot()
            except (OSError, InvalidArgument) as exc:  # mid-renewal, say: keep serving the current one
                if str(exc) != self._problem:
                    self._problem = str(exc)
                    log.warning("TLS certificate not reloaded, serving the previous one: %s", exc)
                return None
            self._problem, pair = "", self._pair
        log.info("TLS certificate %s reloaded", self._paths[0])
        return grpc.ssl_server_certificate_configuration([pair])


@dataclass(frozen=True)
class ClientTls:
    """What a client trusts: the CA certificates that signed the servers' certificates."""

    root_certificates: bytes
    server_name: str = ""  # the name to expect in the certificate, when it differs from the dialled host

    @classmethod
    def load(cls, ca_path: str, server_name: str = "") -> ClientTls | None:
        """From a PEM bundle; None when no CA is given (plaintext)."""
        if not ca_path:
            return None
        return cls(_read(ca_path, "TLS CA bundle"), server_name)


def add_server_tls_flags(parser: argparse.ArgumentParser) -> None:
    """--tls-cert and --tls-key, defaulting to P2P_TLS_CERT and P2P_TLS_KEY (tracker and peer alike)."""
    env = os.environ.get
    parser.add_argument(
        "--tls-cert", default=env("P2P_TLS_CERT", ""), help="PEM certificate chain: serve TLS only [P2P_TLS_CERT]"
    )
    parser.add_argument("--tls-key", default=env("P2P_TLS_KEY", ""), help="PEM private key of --tls-cert [P2P_TLS_KEY]")


def open_channel(address: str, tls: ClientTls | None, options: Sequence[tuple[str, object]] = ()) -> grpc.Channel:
    """A channel to address: TLS-verified against tls, or plaintext when tls is None."""
    if tls is None:
        return grpc.insecure_channel(address, options=list(options))
    extra = [("grpc.ssl_target_name_override", tls.server_name)] if tls.server_name else []
    credentials = grpc.ssl_channel_credentials(root_certificates=tls.root_certificates)
    return grpc.secure_channel(address, credentials, options=[*options, *extra])
