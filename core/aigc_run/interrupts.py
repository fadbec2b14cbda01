"""Ctrl-C at a safe point: inside ``deferred()`` an interrupt waits until the block ends.

Python raises KeyboardInterrupt wherever the main thread happens to be, which may be the
middle of a registry transaction or of a plugin's hook (a lock held, a file half written);
the run's own error handling then finds the registry locked or a plugin's state broken,
and the process can hang instead of stopping. The registry's transactions and the hook
calls run inside ``deferred()``: Ctrl-C there is remembered and raised as the block ends,
so the run stops a moment later, at a point its error handling expects.

Only the default SIGINT handler is replaced, and only in the main thread, for the length
of the outermost block; a process that handles SIGINT itself (the workers of a run over
several processes) keeps its own handler.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

_depth = 0
_pending = False


def _remember(signum: int, frame: FrameType | None) -> None:
    global _pending
    _pending = True


@contextmanager
def deferred() -> Iterator[None]:
    """Run the block to its end before a Ctrl-C that arrives during it is raised."""
    global _depth, _pending
    ours = (
        _depth == 0
        and threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    )
    if ours:
        signal.signal(signal.SIGINT, _remember)
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if ours:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            if _pending:
                _pending = False
                raise KeyboardInterrupt
