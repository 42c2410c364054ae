"""Per-principal rate limits: one token bucket per caller, refilled continuously.

A bucket holds up to `burst` calls (default: one minute's worth) and refills at
`calls_per_minute / 60` per second. A bucket that has refilled completely is the same as no
bucket, so idle ones are dropped; the number kept is capped besides. `check` never awaits, so on
one event loop it is atomic without a lock.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from quiver.config.policy import RateLimit
from quiver.errors import QuiverError
from quiver.policy.principal import Principal

# Far more callers than one gateway serves at once; past it the least recently seen lose their bucket.
MAX_BUCKETS = 10_000


class RateLimitedError(QuiverError):
    """A principal called faster than its rate limit allows; retrying later succeeds."""

    code = "rate_limited"
    retryable = True

    def __init__(self, principal: str, retry_after: float) -> None:
        # Rounded up, so a caller that waits exactly this long is admitted.
        seconds = math.ceil(retry_after * 10) / 10
        super().__init__(
            f"rate limit reached for principal {principal}; retry after {seconds:g} s",
            hint=f"wait {seconds:g} s before the next call, or make fewer calls",
        )
        self.principal = principal
        self.retry_after = seconds


@dataclass
class _Bucket:
    tokens: float
    updated: float
    capacity: float
    rate: float

    def full_at(self) -> float:
        return self.updated + (self.capacity - self.tokens) / self.rate


class RateLimiter:
    """Admits or refuses each call of a principal against the limit `limits` gives it (None: unlimited)."""

    def __init__(
        self,
        limits: Callable[[Principal], RateLimit | None],
        *,
        clock: Callable[[], float] = time.monotonic,
        max_buckets: int = MAX_BUCKETS,
    ) -> None:
        self._limits = limits
        self._clock = clock
        self._max_buckets = max(1, max_buckets)
        # Least recently used first, so the idle buckets are found at the front.
        self._buckets: OrderedDict[tuple[str, str], _Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def check(self, principal: Principal) -> float | None:
        """None when the call may go ahead (and it is counted), else seconds until one would be admitted."""
        limit = self._limits(principal)
        if limit is None:
            return None
        now = self._clock()
        rate = limit.calls_per_minute / 60.0
        capacity = float(limit.burst if limit.burst is not None else max(1.0, limit.calls_per_minute))
        key = (principal.via, principal.name)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(capacity, now, capacity, rate)
        else:
            self._buckets.move_to_end(key)
            # A changed limit (config reload) applies at once; the tokens left carry over, capped.
            bucket.capacity, bucket.rate = capacity, rate
            bucket.tokens = min(capacity, bucket.tokens + (now - bucket.updated) * rate)
            bucket.updated = now
        wait: float | None = None
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
        else:
            wait = (1.0 - bucket.tokens) / rate
        # After the check, so this bucket (now short of full, and the newest) is never the one dropped.
        self._evict(now)
        return wait

    def _evict(self, now: float) -> None:
        # Dropping a full bucket changes nothing: a new one starts full. Stop at the first that is not.
        while self._buckets:
            key, oldest = next(iter(self._buckets.items()))
            if oldest.full_at() > now and len(self._buckets) <= self._max_buckets:
                return
            del self._buckets[key]
