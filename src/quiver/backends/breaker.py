"""A circuit breaker per backend: stop sending to a backend that keeps failing, and try again later.

Closed (normal) → after `threshold` consecutive failures → open: requests fail at once with the
last error and when the next try is → after `cooldown` → half-open: one request is let through;
its success closes the breaker, its failure opens it again for twice as long (up to a cap).
Failures are the backend's (it died, timed out, broke the protocol, would not start); a tool
reporting `isError` is an answer, not a failure.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable

MAX_COOLDOWN = 600.0


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class Breaker:
    def __init__(self, threshold: int, cooldown: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = threshold
        self.base_cooldown = cooldown
        self._clock = clock
        self.failures = 0
        self.last_failure: str | None = None
        self._opened_at: float | None = None
        self._cooldown = cooldown
        self._trial = False

    def configure(self, threshold: int, cooldown: float) -> None:
        self.threshold = threshold
        if self._opened_at is None:
            self._cooldown = cooldown
        self.base_cooldown = cooldown

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at < self._cooldown:
            return BreakerState.OPEN
        return BreakerState.HALF_OPEN

    def retry_in(self) -> float:
        if self._opened_at is None:
            return 0.0
        return max(0.0, self._opened_at + self._cooldown - self._clock())

    def admit(self) -> bool:
        """Whether a request may go to the backend now (in half-open state, one at a time)."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._trial:
            self._trial = True
            return True
        return False

    def succeeded(self) -> None:
        self.failures = 0
        self._opened_at = None
        self._cooldown = self.base_cooldown
        self._trial = False

    def failed(self, reason: str) -> None:
        self.failures += 1
        self.last_failure = reason
        if self._trial:  # the trial failed: open again, for longer
            self._trial = False
            self._cooldown = min(MAX_COOLDOWN, self._cooldown * 2)
            self._opened_at = self._clock()
        elif self.failures >= self.threshold and self._opened_at is None:
            self._opened_at = self._clock()

    def release(self) -> None:
        """A trial request ended without telling anything (e.g. it was cancelled)."""
        self._trial = False
