"""Closing the store while other threads read from it: they are told it is closed; nothing crashes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

# Run in a process of its own: the crash this guards against (a segmentation fault, when close()
# closed a connection under a reader's running query, as a stopping tracker's upkeep thread read)
# would take the test runner down with it.
RACE = textwrap.dedent(
    """
    import sys, threading, time
    from tracker.sqlite_store import SqliteStore
    from tracker.store import StorageFailed

    told = []
    for _ in range(30):
        store = SqliteStore(sys.argv[1])
        go, stop = threading.Event(), threading.Event()

        def read():
            go.wait()
            while not stop.is_set():
                try:
                    store.account("nobody")
                except StorageFailed as exc:
                    told.append(str(exc))
                    return

        readers = [threading.Thread(target=read) for _ in range(6)]
        for reader in readers:
            reader.start()
        go.set()
        time.sleep(0.02)
        store.close()
        time.sleep(0.01)
        stop.set()
        for reader in readers:
            reader.join(10)
    print(len(told), told[0] if told else "")
    """
)


def test_closing_the_store_under_running_readers_tells_them_and_crashes_nothing(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", RACE, str(tmp_path / "tracker.db")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-2000:]}"
    count, message = done.stdout.split(" ", 1)
    assert int(count) > 0 and "is closed: the tracker is stopping" in message  # no connection opened after close
