"""Real-time scheduling for the threads the audio clock waits on."""

from __future__ import annotations

import logging
import os
from typing import Final

log = logging.getLogger(__name__)

#: SCHED_FIFO priority those threads ask for: the lowest, above every ordinary thread (JACK's own run higher).
RT_PRIORITY: Final = 1
# Who was told already that it runs as an ordinary thread: a thread started anew says it once.
_refused: set[str] = set()


def make_realtime(what: str, priority: int = RT_PRIORITY) -> str:
    """Put the calling thread in SCHED_FIFO at ``priority`` if allowed; say how it is scheduled.

    ``SCHED_RESET_ON_FORK``: a process started from this thread does not inherit it.
    """
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO | os.SCHED_RESET_ON_FORK, os.sched_param(priority))
    except OSError as e:  # no CAP_SYS_NICE nor RLIMIT_RTPRIO, or systemd's RestrictRealtime=yes
        why = e.strerror or str(e)
        if what not in _refused:
            _refused.add(what)
            log.info("%s: real-time scheduling not allowed (%s); it runs as an ordinary thread", what, why)
        return f"normal ({why})"
    log.debug("%s: SCHED_FIFO, priority %d", what, priority)
    return f"SCHED_FIFO {priority}"
