"""Put batches on device ahead of use so host→device copies overlap with compute."""

from __future__ import annotations

import collections
from typing import Callable, Iterable, Iterator


def prefetch_to_device(groups: Iterable[tuple[int, object]], size: int, put: Callable) -> Iterator[tuple[int, object]]:
    """Yield ``(n_steps, put(batch, stacked))`` keeping ``size`` transfers in flight (``device_put`` is async)."""
    queue: collections.deque = collections.deque()
    for n_steps, batch in groups:
        queue.append((n_steps, put(batch, n_steps > 1)))
        if len(queue) > size:
            yield queue.popleft()
    while queue:
        yield queue.popleft()
