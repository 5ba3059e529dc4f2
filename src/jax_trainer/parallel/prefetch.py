"""Put batches on device ahead of use so host→device copies overlap with compute."""

from __future__ import annotations

import collections
from typing import Callable, Iterable, Iterator


def prefetch_to_device(groups: Iterable[tuple[int, object]], size: int, put: Callable) -> Iterator[tuple[int, object]]:
    """Yield ``(n_steps, put(batch, stacked))`` with up to ``size`` later batches already put (``put`` is async).

    The first batch is yielded right after its own put, so the first step of an epoch is dispatched without
    waiting for the queue; the queue is topped up after each yield, while the step just dispatched runs.
    """
    groups = iter(groups)
    queue: collections.deque = collections.deque()

    def put_next() -> bool:
        group = next(groups, None)
        if group is not None:
            n_steps, batch = group
            queue.append((n_steps, put(batch, n_steps > 1)))
        return group is not None

    put_next()
    while queue:
        yield queue.popleft()
        while len(queue) < size and put_next():
            pass
