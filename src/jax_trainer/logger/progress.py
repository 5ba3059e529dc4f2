"""Progress bars whose per-step cost is a counter increment and a clock read, drawn so log lines stay whole.

tqdm rate-limits drawing, but ``set_postfix`` formats its values on every call. Here both the count and the
postfix are buffered and handed to tqdm only when ``min_interval`` has passed, so values that are costly to
format (or device arrays that would sync) are touched at most once per refresh.

On a terminal a bar is redrawn in place and, while it is drawn, the console's log handlers write through tqdm
(``tqdm.external_write_mode``: the bar is cleared, the line written, the bar drawn again below it), so a log line
never lands on a bar's line. Into anything else (a pipe, a file) a forced-on bar writes one line when it ends, its
final state: no carriage returns in log files. Every bar ends with its final count drawn, and its rate is the
average over its pass (tqdm's ``smoothing=0``): async dispatch makes per-step rates meaningless.
"""

from __future__ import annotations

import logging
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
    return _is_terminal(_stream(file))


def _stream(file: TextIO | None) -> TextIO:
    return sys.stderr if file is None else file


def _is_terminal(stream) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def _format(value: Any) -> str:
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return str(value)
    try:
        return f"{float(value):.4g}"
    except (TypeError, ValueError):
        return str(value)


class _BarAwareStream:
    """A console stream whose writes clear the drawn bars first and draw them again after (tqdm's own way)."""

    def __init__(self, stream: TextIO):
        self.stream = stream

    def write(self, text: str) -> int:
        with tqdm.external_write_mode(file=self.stream):
            return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()


class _ConsoleLogging:
    """While a bar is drawn on a terminal: the console handlers of the root and ``jax_trainer`` loggers write
    through :class:`_BarAwareStream` (``logging.StreamHandler.setStream``, restored when the last bar ends)."""

    def __init__(self):
        self._depth = 0
        self._swapped: list[tuple[logging.StreamHandler, TextIO]] = []

    def enter(self) -> None:
        self._depth += 1
        if self._depth > 1:
            return
        consoles = (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)
        for logger in (logging.getLogger(), logging.getLogger("jax_trainer")):
            for handler in logger.handlers:
                stream = getattr(handler, "stream", None)
                if isinstance(handler, logging.StreamHandler) and stream is not None and stream in consoles:
                    self._swapped.append((handler, stream))
                    handler.setStream(_BarAwareStream(stream))

    def exit(self) -> None:
        self._depth -= 1
        if self._depth > 0:
            return
        for handler, stream in reversed(self._swapped):
            handler.setStream(stream)
        self._swapped = []


CONSOLE_LOGGING = _ConsoleLogging()


class ProgressBar:
    """``update(n, **postfix)`` per step; redraws (and postfix formatting) happen at most every ``min_interval`` s.

    On a terminal tqdm draws it in place; into another stream it writes one line, its final state, at ``close``.
    """

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
        self.total, self.desc, self.file = total, desc, _stream(file)
        self._pending = 0
        self._count = 0
        self._postfix: dict[str, Any] = {}
        self._postfix_text = ""
        self._started = self._last_refresh = time.monotonic()
        self._bar = None
        self._open = self.enabled
        if self.enabled and _is_terminal(self.file):
            # Drawing is rate-limited here, so tqdm redraws on every update it is given.
            self._bar = tqdm(
                total=total,
                desc=desc,
                file=file,
                leave=leave,
                mininterval=0,
                miniters=1,
                dynamic_ncols=True,
                smoothing=0,
            )
            CONSOLE_LOGGING.enter()

    def update(self, n: int = 1, **postfix: Any) -> None:
        """Advance by ``n``; ``postfix`` replaces the values shown after the bar at the next redraw."""
        if not self._open:
            return
        self._pending += n
        if postfix:
            self._postfix = postfix
        if self._bar is None:
            return
        now = time.monotonic()
        if now - self._last_refresh >= self.min_interval:
            self._refresh(now)

    def set_postfix(self, **postfix: Any) -> None:
        """Values shown after the bar from the next redraw on (nothing is formatted now)."""
        self._postfix = postfix

    def _take_postfix(self) -> None:
        if self._postfix:
            self._postfix_text = ", ".join(f"{key}={_format(value)}" for key, value in self._postfix.items())
            self._postfix = {}

    def _refresh(self, now: float) -> None:
        self._take_postfix()
        self._bar.set_postfix_str(self._postfix_text, refresh=False)
        if self._pending:
            self._bar.update(self._pending)
            self._pending = 0
        else:
            self._bar.refresh()
        self._last_refresh = now

    def close(self) -> None:
        """Draw the final state and release the bar; later calls do nothing."""
        if not self._open:
            return
        self._open = False
        if self._bar is not None:
            try:
                self._refresh(time.monotonic())
                self._bar.close()
            finally:
                self._bar = None
                CONSOLE_LOGGING.exit()
            return
        self._count += self._pending
        self._take_postfix()
        line = tqdm.format_meter(
            self._count,
            self.total,
            time.monotonic() - self._started,
            prefix=f"{self.desc}: ",
            postfix=self._postfix_text or None,
        )
        self.file.write(line + "\n")
        self.file.flush()

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class EpochBar:
    """The train loop's bars: one per epoch, each closed (drawn at its final count, left on its own line) before the
    epoch's validation starts, so at most one bar is drawn at a time and log lines go between them."""

    def __init__(self, enabled: bool | None):
        self.enabled = enabled
        self._bar: ProgressBar | None = None

    def start(self, total: int | None, desc: str) -> ProgressBar:
        """A new bar for one epoch (the previous one closed first)."""
        self.close()
        self._bar = ProgressBar(total, desc, self.enabled)
        return self._bar

    def close(self) -> None:
        """Draw the current epoch's final state and release its bar; safe to call twice."""
        if self._bar is not None:
            bar, self._bar = self._bar, None
            bar.close()
