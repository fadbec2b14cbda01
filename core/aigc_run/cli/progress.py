"""Progress of a command: tqdm's bar in a terminal, plain lines anywhere else.

A bar redraws itself with carriage returns, many times a second; in a CI log or a file
that nohup writes, each redraw stays, and a short run's log grew to thousands of updates.
Outside a terminal a plain line is printed every ``EVERY`` of the total instead.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

import click

EVERY = 0.1  # a line per tenth of the work


def progress_bars(quiet: bool) -> Any:
    """``progress(iterable=None, total=, initial=, desc=, unit=, leave=)``, as tqdm takes it."""
    if quiet or sys.stderr.isatty():
        from tqdm.auto import tqdm

        def bar(*args: Any, **kwargs: Any) -> Any:
            return tqdm(*args, disable=quiet, dynamic_ncols=True, **kwargs)

        return bar
    return PlainProgress


class PlainProgress:
    """The part of tqdm's interface the engine uses, reporting in whole lines on stderr:
    ``desc: done/total unit (percent), elapsed, postfix`` every EVERY of the total and at
    the end. Without a known total (an iterable with no length) only the end is reported."""

    def __init__(
        self,
        iterable: Iterable[Any] | None = None,
        total: int | None = None,
        initial: int = 0,
        desc: str = "",
        unit: str = "it",
        leave: bool = True,
    ) -> None:
        self.iterable = iterable
        if total is None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total, self.n, self.desc, self.unit = total, initial, desc, unit
        self.postfix: dict[str, Any] = {}
        self.started = time.monotonic()
        self.shown = initial
        self.closed = False

    def __iter__(self) -> Iterator[Any]:
        assert self.iterable is not None
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.total and self.n - self.shown >= max(1, int(self.total * EVERY)):
            self._line()

    def set_postfix(self, values: dict[str, Any], refresh: bool = False) -> None:
        self.postfix = dict(values)

    def write(self, text: str) -> None:
        click.echo(text, err=True)

    def close(self) -> None:
        if not self.closed and self.n != self.shown:
            self._line()
        self.closed = True

    def _line(self) -> None:
        self.shown = self.n
        done = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        share = f" ({100 * self.n // self.total}%)" if self.total else ""
        extra = "".join(f", {k}={v}" for k, v in self.postfix.items())
        seconds = time.monotonic() - self.started
        click.echo(f"{self.desc}: {done} {self.unit}{share}, {seconds:.0f} s{extra}", err=True)
