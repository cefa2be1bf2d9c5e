"""Stopping a training run cleanly when asked to: SIGTERM or SIGUSR1, as SLURM sends before a time limit or
a pre-emption, and as `kill` sends by default.

The handler only records the request; the loop finishes the step it is in, writes a checkpoint and returns,
so the rerun continues at exactly that step. A second signal changes nothing (the first one is being served);
SIGKILL, which follows after the grace period, cannot be caught.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class StopRequest:
    """Callable flag: True once a stop signal arrived; `name` says which one."""

    def __init__(self) -> None:
        self.name: str | None = None

    def __call__(self) -> bool:
        return self.name is not None

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.name = self.name or signal.Signals(signum).name  # no logging here: a handler may interrupt it


@contextlib.contextmanager
def stop_on_signals(signals: tuple[signal.Signals, ...] = STOP_SIGNALS) -> Iterator[StopRequest]:
    """Within the block, `signals` set the yielded request instead of ending the process; the previous
    handlers come back afterwards. Must run in the main thread (Python delivers signals there)."""
    request = StopRequest()
    previous = {s: signal.signal(s, request._handle) for s in signals}
    try:
        yield request
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def ignore_stop_signals() -> None:
    """For helper processes (DataLoader workers): the stop signal reaches every process of a SLURM job step,
    and a worker dying of it would abort the main process's step; the main process ends its workers itself."""
    for s in STOP_SIGNALS:
        signal.signal(s, signal.SIG_IGN)
