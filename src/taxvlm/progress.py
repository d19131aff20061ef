"""Progress for long loops that is readable in a terminal and in a batch job's log.

On SLURM stderr is a file: tqdm's default redraw every 0.1 s fills it with bar lines. Here a bar
redraws at most every `NON_TTY_INTERVAL_S` when stderr is not a terminal (and a loop shorter than
that prints none), and every `LOG_EVERY_S` the rule log gets one line with the count, rate and ETA.
"""

from __future__ import annotations

import datetime
import logging
import sys
import time
from collections.abc import Iterator
from typing import Any

from tqdm import tqdm

log = logging.getLogger(__name__)

NON_TTY_INTERVAL_S = 30.0
LOG_EVERY_S = 60.0


def progress_interval() -> float:
    """Seconds between bar redraws: tqdm's default in a terminal, `NON_TTY_INTERVAL_S` in a log file."""
    return 0.1 if sys.stderr.isatty() else NON_TTY_INTERVAL_S


def status_line(desc: str, done: float, total: float | None, elapsed: float, unit: str) -> str:
    """`desc: done/total unit (rate unit/s, ETA h:mm:ss)`; without a total, no ETA."""
    rate = done / elapsed if elapsed > 0 else 0.0
    if total is None:
        return f"{desc}: {done:g} {unit} ({rate:.3g} {unit}/s)"
    eta = datetime.timedelta(seconds=round((total - done) / rate)) if rate > 0 else "?"
    return f"{desc}: {done:g}/{total:g} {unit} ({rate:.3g} {unit}/s, ETA {eta})"


class Progress(tqdm):
    """tqdm with the redraw interval above, plus a `log.info` status line every `LOG_EVERY_S`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        interval = progress_interval()
        kwargs.setdefault("mininterval", interval)
        kwargs.setdefault("delay", 0.0 if interval < NON_TTY_INTERVAL_S else interval)
        super().__init__(*args, **kwargs)
        self._done, self._started = 0.0, time.monotonic()
        self._logged_at = self._started

    def __iter__(self) -> Iterator[Any]:
        """Each item through `update`: tqdm's own loop counts privately and calls `update` only when
        it redraws, so counting in both places counted items twice."""
        if self.disable:
            yield from self.iterable
            return
        try:
            for item in self.iterable:
                yield item
                self.update()
        finally:
            self.close()

    def update(self, n: float | None = 1) -> bool | None:
        shown = super().update(n)
        self._done += n or 0
        self._maybe_log()
        return shown

    def _maybe_log(self) -> None:
        now = time.monotonic()
        if now - self._logged_at >= LOG_EVERY_S:
            self._logged_at = now
            log.info(status_line(self.desc or "progress", self._done, self.total, now - self._started, self.unit))
