"""Background preparation of host batches on threads, in order, with a bounded number in flight.

Reading rows (``os.pread``), gathering and normalising them (numpy) release the GIL, so a few threads prepare the
next batches while the main thread dispatches steps to the device. Results come back in submission order, so the
data order (and hence an exact resume) does not depend on the number of threads. (Putting the prepared batches on
the device ahead of use is ``parallel/prefetch.py``'s job, downstream of this.)
"""

from __future__ import annotations

import collections
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


def prefetched(items: Iterable[Item], prepare: Callable[[Item], Result], workers: int, depth: int) -> Iterator[Result]:
    """``prepare(item)`` for each item, in order, computed by ``workers`` threads at most ``depth`` items ahead of
    the consumer (so at most ``depth`` prepared results are held). An error in ``prepare`` is raised where its
    result would have been yielded; closing the iterator early cancels what has not started and waits for the
    rest, so no thread outlives it."""
    pending: collections.deque = collections.deque()
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="jax-trainer-data")
    try:
        for item in items:
            pending.append(pool.submit(prepare, item))
            if len(pending) >= depth:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True)
