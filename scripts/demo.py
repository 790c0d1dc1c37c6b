"""The one-command demo: a tracker on loopback, checked live with grpcurl, stopped cleanly."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="p2p-demo-"))
    port = free_port()
    step(f"starting a tracker on 127.0.0.1:{port} (SQLite at {work / 'tracker.db'})")
    tracker = subprocess.Popen(
        ["p2p-tracker", "--listen", f"127.0.0.1:{port}", "--db", str(work / "tracker.db")],
        stdout=subprocess.DEVNULL,
        stderr=open(work / "tracker.log", "w"),
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            out = subprocess.run(["grpcurl", "-plaintext", f"127.0.0.1:{port}", "list"], capture_output=True, text=True)
            if out.returncode == 0:
                break
            if time.monotonic() > deadline or tracker.poll() is not None:
                print("tracker did not come up:\n" + (work / "tracker.log").read_text(), file=sys.stderr)
                return 1
            time.sleep(0.2)
        step(f"grpcurl -plaintext 127.0.0.1:{port} list")
        print(out.stdout)
        return 0
    finally:
        step("stopping the tracker")
        tracker.send_signal(signal.SIGTERM)
        tracker.wait(timeout=20)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
