"""The suite's deadline: wall time from the script's start, a reserve kept for writing the outputs, and an alarm
that interrupts a stage still running halfway into the reserve.

Stages plan to end where the reserve begins (training's time limit is :meth:`Deadline.remaining`, evaluations start
only when their estimate fits it); the first half of the reserve is the slack of a training run's last checkpoint
and of an estimate that was short, the second half is for writing the outputs."""

from __future__ import annotations

import math
import signal
import time
from contextlib import contextmanager
from typing import Iterator


class OutOfTime(BaseException):
    """Raised inside a stage when the deadline's reserve is reached (a ``BaseException``, so that jobs which keep
    their progress on an interruption, as score-vcf does, keep it)."""


class Deadline:
    """``seconds`` of wall time from ``start`` (``None``: no deadline); ``reserve`` seconds of it are kept for the
    outputs written after the last stage."""

    def __init__(self, seconds: float | None, reserve: float, start: float | None = None) -> None:
        self.start = time.perf_counter() if start is None else start
        self.seconds = seconds
        self.reserve = reserve

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def remaining(self) -> float:
        """Seconds left for stages (the reserve excluded); infinite without a deadline."""
        if self.seconds is None:
            return math.inf
        return self.seconds - self.reserve - self.elapsed()

    def fits(self, estimate: float) -> bool:
        return estimate <= self.remaining()

    @contextmanager
    def alarm(self) -> Iterator[None]:
        """Raise :class:`OutOfTime` in the block halfway into the reserve (a SIGALRM timer; no-op without a
        deadline), never inside an import."""
        if self.seconds is None:
            yield
            return

        def ring(signum, frame):
            if _importing(frame):  # a module cut off mid-import would stay broken: ring again once it is done
                signal.setitimer(signal.ITIMER_REAL, 0.05)
                return
            raise OutOfTime()

        previous = signal.signal(signal.SIGALRM, ring)
        signal.setitimer(signal.ITIMER_REAL, max(self.remaining() + self.reserve / 2, 1e-3))
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


def _importing(frame) -> bool:
    """Whether ``frame`` or a caller runs Python's import machinery."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def estimate_seconds(work: float, done: list[tuple[float, float]], fallback_rate: float, overhead: float) -> float:
    """Seconds a stage of ``work`` units should take: at the rate of the finished stage of its kind closest to it in
    size (``done``: ``(work, seconds)`` pairs; fixed costs weigh more in small stages), else at ``fallback_rate``
    units per second, plus a fixed ``overhead``."""
    if work <= 0:
        return overhead
    done = [pair for pair in done if pair[0] > 0]
    if done:
        nearest, seconds = min(done, key=lambda pair: abs(math.log(pair[0] / work)))
        return work * seconds / nearest + overhead
    return work / fallback_rate + overhead
