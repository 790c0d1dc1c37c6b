"""Credentials: salted slow password hashes, session tokens stored only as hashes, peer tickets."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

# scrypt with n=2**14, r=8 costs ~16 MiB and tens of milliseconds: slow for a guesser, fine for a login.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 1 << 14, 8, 1
TOKEN_BYTES = 32  # 256 random bits per session token


def hash_password(password: str) -> str:
    """A self-describing salted scrypt hash of password."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32)
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    """True when password matches the stored hash (constant-time comparison)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        computed = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), dklen=32)
    except ValueError:
        return False
    return hmac.compare_digest(computed.hex(), digest)


def new_token() -> str:
    """A fresh session token for the client."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    """What the store keeps instead of the token: its sha256."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Ticket:
    """A claim that the session of `token_hash` may talk to the peer account `audience` until
    `expires_at`. (The hash names a session for good; its row may change, see Store.replace_index.
    Whoever reads it cannot log in with it: that takes the token.)"""

    token_hash: str
    audience: str
    expires_at: float


class TicketSigner:
    """Signs and checks peer tickets with a secret that only the tracker knows (HMAC-SHA256)."""

    def __init__(self, secret: bytes):
        self._secret = secret

    def _mac(self, payload: bytes) -> str:
        return base64.urlsafe_b64encode(hmac.new(self._secret, payload, hashlib.sha256).digest()).decode().rstrip("=")

    def sign(self, ticket: Ticket) -> str:
        payload = json.dumps([ticket.token_hash, ticket.audience, int(ticket.expires_at)]).encode()
        body = base64.urlsafe_b64encode(payload).decode().rstrip("=")
        return f"{body}.{self._mac(payload)}"

    def open(self, text: str) -> Ticket | None:
        """The ticket in text if the signature is ours, else None (expiry is the caller's check)."""
        try:
            body, mac = text.split(".")
            payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            if not hmac.compare_digest(self._mac(payload), mac):
                return None
            token_hash, audience, expires_at = json.loads(payload)
            return Ticket(str(token_hash), str(audience), float(expires_at))
        except (ValueError, TypeError):
            return None
