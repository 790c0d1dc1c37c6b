"""Whether a peer's listed address takes connections, tried from the tracker at login.

eDonkey servers connect back to each client that logs in and tell it when they cannot (its
"LowID"). A peer listed under an address nobody can dial (a mistyped --advertise, a port its
firewall or container does not open) looked fine to its owner while every download from it
failed elsewhere. A TCP connection is all that is tried: it says the port is open from here,
whatever the peer serves over it (plaintext or TLS), and sends nothing.
"""

from __future__ import annotations

import socket


def probe(address: str, timeout: float) -> str:
    """Why a TCP connection to host:port could not be opened within timeout seconds; "" if it was."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return ""
    except ConnectionRefusedError:
        return "connection refused (nothing listens on that port there, or a firewall refuses it)"
    except TimeoutError:
        return f"no answer within {timeout:g} s (a firewall drops it, or no such host on this network)"
    except socket.gaierror:
        return f"cannot resolve the host {host!r}"
    except (OSError, ValueError) as exc:
        return getattr(exc, "strerror", None) or str(exc)
