"""What every process a test starts gets: death with the test process.

A crashed or killed pytest must leave nothing behind (a broker, a data plane, a sink). The
kernel's parent-death signal does that, but it follows the *thread* that started the child,
so it is only set for children started from the main thread.
"""

from __future__ import annotations

import ctypes
import signal
import threading
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with_parent() -> None:
    # Runs in the child between fork and exec.
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def die_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn` that SIGKILLs the child when the test process dies (None off the main
    thread, where the signal would follow a thread that may end first)."""
    return _die_with_parent if threading.current_thread() is threading.main_thread() else None
