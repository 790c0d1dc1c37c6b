"""Validation shared by tracker and peer: share-relative file names and sha256 digests."""

from __future__ import annotations

import re

MAX_NAME_BYTES = 1024
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
MIN_SHA256_PREFIX = 8  # as `git` abbreviates ids: short enough to type, long enough to be unique
_SHA256_PREFIX = re.compile(rf"[0-9a-f]{{{MIN_SHA256_PREFIX},64}}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0, DEL and C1 (\x9b starts an escape sequence in some terminals)
# Explicit bidirectional embeddings, overrides and isolates: "invoice\u202efdp.exe" displays as
# "invoiceexe.pdf" (right-to-left scripts need none of them: their direction is in the letters)
_BIDI_CONTROL = re.compile("[\u202a-\u202e\u2066-\u2069]")
_BAD_COMPONENT = re.compile(r"(^|/)\.{0,2}(/|$)")  # an empty, '.' or '..' component


# What a peer keeps inside its share for itself: its state folder (the hash cache) at the top, and
# the staged files of transfers under way beside their destinations. Never shared, and never a name
# another peer may write to (a planted `.p2p/hashes.db-journal` would be rolled into the cache, a
# planted chunk record taken for a download under way).
STATE_DIR_NAME = ".p2p"
PART_SUFFIX = ".p2p-part"
HAVE_SUFFIX = ".p2p-have"
MANIFEST_SUFFIX = ".p2p-chunks"
STAGING_SUFFIXES = (PART_SUFFIX, HAVE_SUFFIX, MANIFEST_SUFFIX, MANIFEST_SUFFIX + ".tmp")

_UNSAFE_CHAR = re.compile(r"[\x00-\x1f\x7f-\x9f\\\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_UNDECODED = re.compile(r"[\ud800-\udfff]")  # bytes of a name that is not UTF-8, as Python reads them


def _plainly_safe(name: str) -> bool:
    """A quick pass for the common case (indexes hold many names): nothing name_problem objects to.

    No leading '/' or '.', no '//', '/.' or trailing '/' means no empty, '.' or '..' component;
    at most 4 UTF-8 bytes a character means short enough without encoding it.
    """
    return (
        0 < len(name) <= MAX_NAME_BYTES // 4
        and not name.startswith(("/", "."))
        and name[1:2] != ":"
        and "//" not in name
        and "/." not in name
        and not name.endswith("/")
        and not _UNSAFE_CHAR.search(name)
        and not name.endswith(STAGING_SUFFIXES)
    )


def name_problem(name: str) -> str | None:
    """Why name is not a safe share-relative path, or None when it is."""
    if _plainly_safe(name):
        return None
    if not name:
        return "is empty"
    if _UNDECODED.search(name):
        return "is not UTF-8 (written in another encoding): rename it to share it"
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        return f"is longer than {MAX_NAME_BYTES} bytes"
    if _CONTROL.search(name):
        return "contains a NUL or control character"
    if _BIDI_CONTROL.search(name):
        return "contains a bidirectional control character (U+202A-U+202E, U+2066-U+2069), which makes a name display as another"
    if name.startswith("/"):
        return "is an absolute path"
    if "\\" in name:  # a peer on Windows would take it for a folder separator (..\\..\\x climbs out)
        return "contains a backslash (a folder separator on Windows)"
    if len(name) > 1 and name[1] == ":":
        return "starts like a Windows drive (C:)"
    if _BAD_COMPONENT.search(name):
        return "has an empty, '.' or '..' component"
    if name.split("/", 1)[0] == STATE_DIR_NAME or name.endswith(STAGING_SUFFIXES):
        return f"is kept for a peer's own files ({STATE_DIR_NAME}/ and names ending in {', '.join(STAGING_SUFFIXES[:3])})"
    return None


_NOT_IN_HOST = re.compile(r"[/\\\s@]")  # a URL's scheme or path, spaces, user@: no host name has them


def split_host_port(address: str) -> tuple[str, int] | None:
    """'host:port' or '[v6]:port' as (host, port) for a port of 0-65535; None when it is not that
    (gRPC itself takes port 99999 as another port: wrapped on dialling, "any free one" on listening)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535 or _NOT_IN_HOST.search(host):
        return None
    return host.strip("[]"), int(port)


def url_hint(address: str) -> str:
    """A hint for an address typed as a URL ('http://host:port'), the usual slip; else ''."""
    return "; drop the scheme: a gRPC address is host:port, not a URL" if "://" in address else ""


def is_sha256_hex(value: str) -> bool:
    """True for exactly 64 lowercase hex digits, the form sha256sum prints."""
    return bool(_SHA256_HEX.fullmatch(value))


def is_sha256_prefix(value: str) -> bool:
    """True for 8 to 64 lowercase hex digits: a sha256 or the start of one (search shows 12)."""
    return bool(_SHA256_PREFIX.fullmatch(value))
