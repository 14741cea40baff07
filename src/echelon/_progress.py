"""Progress on stderr that stays readable in a log file.

A tqdm bar redraws itself several times a second with carriage returns: fine in a terminal, but
``make reproduce > log 2>&1`` keeps every redraw (a quick run wrote 465 KB of them). So
:func:`progress` returns a tqdm bar only when its stream is a terminal; anywhere else it returns a
:class:`LineProgress`, which has the same interface and writes a few plain lines::

    iql: step 0/3400
    iql: step 680/3400 (20%) 01:02, train_critic_loss=597, val_critic_loss=600
    iql: step 3400/3400 (100%) 05:10, done, train_critic_loss=590, val_critic_loss=592

Use it as tqdm is used::

    with progress(total=len(grid), desc="grid base-stock", unit="cfg", enabled=show) as bar:
        for point in grid:
            ...
            bar.update(1)
            bar.set_postfix({"best": f"{best:.1f}"})

    for point in progress(grid, desc="grid base-stock", unit="cfg"):
        ...
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import IO, Any

from tqdm.auto import tqdm

# A line at most every tenth of the work AND at most once a minute: a short task writes only its
# first and last lines, a long one at most ten in between however long it runs.
_LINE_FRACTION = 0.1
_LINE_SECONDS = 60.0


def progress(
    iterable: Iterable | None = None,
    *,
    total: int | None = None,
    desc: str = "",
    unit: str = "it",
    initial: int = 0,
    enabled: bool = True,
    file: IO[str] | None = None,
) -> tqdm | LineProgress:
    """A progress bar on a terminal, a few plain lines anywhere else.

    Args:
        iterable: Iterate over it through the bar (each item counts 1), or None to call
            ``update`` yourself.
        total: The work to do, in ``unit``s (defaults to ``len(iterable)`` when it has one).
        desc: What is progressing, at the start of each line (``"iql"``).
        unit: The name of one unit of work (``"step"``, ``"cfg"``).
        initial: Work already done (a resumed run).
        enabled: False writes nothing at all.
        file: Where to write; ``sys.stderr`` when None.

    Returns:
        A ``tqdm`` bar when ``file`` is a terminal and ``enabled``; otherwise a
        :class:`LineProgress`. Both offer ``update(n)``, ``set_postfix(mapping, **values)``,
        ``close()``, ``with`` and iteration.
    """
    stream = sys.stderr if file is None else file
    if enabled and _is_terminal(stream):
        return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, file=stream)
    return LineProgress(iterable, total=total, desc=desc, unit=unit, initial=initial,
                        enabled=enabled, file=stream)


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class LineProgress:
    """tqdm's interface, written as plain lines: one at the start, one per tenth of the work at
    most once a minute, and one at the end (``close``, or the end of the iteration).

    Without a ``total`` the lines in between come once a minute. Build it with :func:`progress`.
    """

    def __init__(self, iterable: Iterable | None = None, *, total: int | None = None,
                 desc: str = "", unit: str = "it", initial: int = 0, enabled: bool = True,
                 file: IO[str] | None = None) -> None:
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.iterable = iterable
        self.total = total
        self.desc = desc
        self.unit = unit
        self.n = initial
        self.enabled = enabled
        self.file = sys.stderr if file is None else file
        self.postfix = ""
        self._start = time.monotonic()
        self._last_time = self._start
        self._last_n = initial
        self._closed = False
        self._write(first=True)

    def update(self, n: int = 1) -> None:
        """Counts ``n`` more units done; writes a line once a tenth more and a minute passed."""
        self.n += n
        now = time.monotonic()
        if now - self._last_time < _LINE_SECONDS:
            return
        if self.total and (self.n - self._last_n < _LINE_FRACTION * self.total
                           or self.n >= self.total):  # the end is close()'s line
            return
        self._last_time, self._last_n = now, self.n
        self._write()

    def set_postfix(self, ordered_dict: Mapping[str, Any] | None = None, refresh: bool = True,
                    **values: Any) -> None:
        """Values shown at the end of the next lines (``loss=0.12``), as tqdm's ``set_postfix``
        (``refresh`` is accepted for the same signature; nothing is written until the next line)."""
        items = {**(ordered_dict or {}), **values}
        self.postfix = ", ".join(f"{key}={value}" for key, value in items.items())

    def close(self) -> None:
        """Writes the last line (once)."""
        if not self._closed:
            self._closed = True
            finished = self.total is None or self.n >= self.total
            self._write(end="done" if finished else "stopped")

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __iter__(self) -> Iterator:
        if self.iterable is None:
            raise TypeError("this progress has no iterable; call update() instead")
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def _write(self, first: bool = False, end: str = "") -> None:
        if not self.enabled or self.file is None:
            return
        line = f"{self.desc}: " if self.desc else ""
        line += f"{self.unit} {self.n}/{self.total}" if self.total else f"{self.unit} {self.n}"
        if not first:
            if self.total:
                line += f" ({100 * self.n // self.total}%)"
            line += " " + tqdm.format_interval(time.monotonic() - self._start)
        if end:
            line += f", {end}"
        if self.postfix:
            line += f", {self.postfix}"
        print(line, file=self.file, flush=True)
