"""A tqdm progress bar whose per-step cost is a counter increment and a clock read.

tqdm rate-limits drawing, but ``set_postfix`` formats its values on every call. Here both the count and the
postfix are buffered and handed to tqdm only when ``min_interval`` has passed, so values that are costly to
format (or device arrays that would sync) are touched at most once per refresh.
"""

import sys
import time
from typing import Any, TextIO

import jax
from tqdm.auto import tqdm


def progress_enabled(enabled: bool | None, file: TextIO | None = None) -> bool:
    """The trainer's ``enable_progress_bar``: None means on only for an interactive terminal, True forces it
    on, False off; in every case only process 0 draws."""
    if jax.process_index() != 0 or enabled is False:
        return False
    if enabled:
        return True
    stream = sys.stderr if file is None else file
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _format(value: Any) -> str:
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return str(value)
    try:
        return f"{float(value):.4g}"
    except (TypeError, ValueError):
        return str(value)


class ProgressBar:
    """``update(n, **postfix)`` per step; redraws (and postfix formatting) happen at most every ``min_interval`` s."""

    def __init__(
        self,
        total: int | None,
        desc: str,
        enabled: bool | None = None,
        min_interval: float = 0.1,
        file: TextIO | None = None,
        leave: bool = True,
    ):
        self.enabled = progress_enabled(enabled, file)
        self.min_interval = min_interval
        self._pending = 0
        self._postfix: dict[str, Any] = {}
        self._restart: tuple[int | None, str, float] | None = None
        self._last_refresh = time.monotonic()
        self._bar = None
        if self.enabled:
            # Drawing is rate-limited here, so tqdm redraws on every update it is given.
            self._bar = tqdm(
                total=total, desc=desc, file=file, leave=leave, mininterval=0, miniters=1, dynamic_ncols=True
            )

    def update(self, n: int = 1, **postfix: Any) -> None:
        """Advance by ``n``; ``postfix`` replaces the values shown after the bar at the next redraw."""
        if self._bar is None:
            return
        self._pending += n
        if postfix:
            self._postfix = postfix
        now = time.monotonic()
        if now - self._last_refresh >= self.min_interval:
            self._refresh(now)

    def reset(self, total: int | None, desc: str) -> None:
        """Count a new pass (the next epoch) on the same bar; like every change, drawn at the next redraw."""
        if self._bar is None:
            return
        self._restart = (total, desc, time.time())
        self._pending = 0

    def set_postfix(self, **postfix: Any) -> None:
        """Values shown after the bar from the next redraw on (nothing is formatted now)."""
        self._postfix = postfix

    def _refresh(self, now: float) -> None:
        if self._restart is not None:
            total, desc, started = self._restart
            self._restart = None
            self._bar.set_description_str(desc, refresh=False)
            self._bar.reset(total)
            self._bar.start_t = self._bar.last_print_t = started  # rate and elapsed time from the pass's start
        if self._postfix:
            text = ", ".join(f"{key}={_format(value)}" for key, value in self._postfix.items())
            self._bar.set_postfix_str(text, refresh=False)
            self._postfix = {}
        if self._pending:
            self._bar.update(self._pending)
            self._pending = 0
        else:
            self._bar.refresh()
        self._last_refresh = now

    def close(self) -> None:
        """Draw the final state and release the bar."""
        if self._bar is None:
            return
        self._refresh(time.monotonic())
        self._bar.close()
        self._bar = None

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class EpochBar:
    """The train loop's bar: one per run, restarted every epoch (as Lightning does) rather than a new tqdm per
    epoch, whose creation and final draw cost more than a small model's step."""

    def __init__(self, enabled: bool | None):
        self.enabled = enabled
        self._bar: ProgressBar | None = None

    def start(self, total: int | None, desc: str) -> ProgressBar:
        if self._bar is None:
            self._bar = ProgressBar(total, desc, self.enabled)
        else:
            self._bar.reset(total, desc)
        return self._bar

    def close(self) -> None:
        """Draw the last epoch's final state; the next ``start`` opens a new bar."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
