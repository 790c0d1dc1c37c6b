"""Whether a peer's listed address takes connections, tried from the tracker at login.

eDonkey servers connect back to each client that logs in and tell it when they cannot (its
"LowID"). A peer listed under an address nobody can dial (a mistyped --advertise, a port its
firewall or container does not open) looked fine to its owner while every download from it
failed elsewhere. A TCP connection is all that is tried: it says the port is open from here,
whatever the peer serves over it (plaintext or TLS), and sends nothing.
"""

from __future__ import annotations

import socket
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as Pending

LOGIN_WAIT_SECONDS = 0.5  # what a login waits for its try: a refused or open port answers at once
REMEMBERED = 100_000  # addresses whose last try is kept, for heartbeats; the oldest go first


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


class Prober:
    """Tries addresses on a few threads of its own. A login waits a moment at most: an address a
    firewall drops takes the whole timeout, and a lab of such peers logging in at once (after a
    tracker restart) must not hold every RPC thread. A later heartbeat carries the answer."""

    def __init__(self, timeout: float, threads: int = 4, login_wait: float = LOGIN_WAIT_SECONDS):
        self._timeout, self._login_wait = timeout, login_wait
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="probe")  # threads start on first use
        self._lock = threading.Lock()
        self._last: OrderedDict[str, str] = OrderedDict()  # address -> its last try's problem ("": none)

    def at_login(self, address: str) -> str:
        """Try address; why it failed if that is known within a moment, else "" for now."""
        try:
            return self._pool.submit(self._try, address).result(timeout=self._login_wait)
        except Pending:
            return ""

    def last(self, address: str) -> str:
        """Why the last finished try of address failed; "" if it did not, or none has finished."""
        with self._lock:
            return self._last.get(address, "")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _try(self, address: str) -> str:
        problem = probe(address, self._timeout)
        with self._lock:
            self._last[address] = problem
            self._last.move_to_end(address)
            if len(self._last) > REMEMBERED:
                self._last.popitem(last=False)
        return problem
