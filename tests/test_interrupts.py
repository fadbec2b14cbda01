"""Ctrl-C inside ``interrupts.deferred()`` is raised when the block ends, not in its middle."""

from __future__ import annotations

import subprocess
import sys
import textwrap

PROGRAM = textwrap.dedent(
    """
    import os, signal
    from aigc_run import interrupts

    signal.signal(signal.SIGINT, signal.default_int_handler)
    done = []
    try:
        with interrupts.deferred():
            with interrupts.deferred():  # nested: only the outermost block raises
                os.kill(os.getpid(), signal.SIGINT)
                done.append("inner")
            done.append("outer")
    except KeyboardInterrupt:
        done.append("interrupted")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back
    try:
        os.kill(os.getpid(), signal.SIGINT)  # outside a block: at once, as usual
        done.append("not raised")
    except KeyboardInterrupt:
        done.append("at once")
    print(",".join(done))
    """
)


def test_ctrl_c_waits_for_the_block_and_is_raised_at_its_end() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "inner,outer,interrupted,at once"
