"""Several files at once: `get` and `put` of many files work on a few of them in parallel.

One after another, an album of small files waited on a round trip or two per file, and a slow
peer held up every file behind it.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Generator, Sequence
from typing import TypeVar

from p2p_common.errors import P2PError

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")


def each_at_once(
    items: Sequence[Item], jobs: int, work: Callable[[Item], Result], cancel: threading.Event
) -> Generator[tuple[Item, Result | Exception], None, None]:
    """work(item) on `jobs` threads; yields each item with its result, or the error it raised,
    as it ends: a failed item does not stop the others. When the caller stops early (Ctrl-C
    raises in it while it waits here), cancel is set, no item starts, and work is expected to
    end the one under way soon (it is given 10 s)."""
    todo: queue.SimpleQueue[Item] = queue.SimpleQueue()
    for item in items:
        todo.put(item)
    ended: queue.SimpleQueue[tuple[Item, Result | Exception]] = queue.SimpleQueue()

    def worker() -> None:
        while not cancel.is_set():
            try:
                item = todo.get_nowait()
            except queue.Empty:
                return
            try:
                ended.put((item, work(item)))
            except (P2PError, OSError) as exc:
                ended.put((item, exc))
            except Exception as exc:  # a bug: this item fails, the others go on
                log.exception("%r failed", item)
                ended.put((item, P2PError(f"{type(exc).__name__}: {exc}")))

    workers = [threading.Thread(target=worker, name=f"job-{i}", daemon=True) for i in range(min(jobs, len(items)))]
    for thread in workers:
        thread.start()
    try:
        for _ in items:
            yield _next_of(ended)
    finally:
        cancel.set()
        for thread in workers:
            thread.join(timeout=10)


def _next_of(ended: queue.SimpleQueue[tuple[Item, Result | Exception]]) -> tuple[Item, Result | Exception]:
    """The next item, waited for in slices (as gRPC's own waits are): Python runs a signal's
    handler in the main thread only once it wakes, and the kernel may hand the signal to another
    thread; asleep on the queue, Ctrl-C or SIGTERM waited for the next file to end."""
    while True:
        try:
            return ended.get(timeout=0.1)
        except queue.Empty:
            continue
