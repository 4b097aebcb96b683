"""What every process Weir starts shares."""

from __future__ import annotations

import ctypes
import os
import signal

PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> None:
    """In a child, before exec: SIGTERM when the parent dies, even by SIGKILL (Linux), so
    no child outlives the process that owns it. The signal follows the thread that forked."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        return
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)
