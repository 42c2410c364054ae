"""Token buckets per principal, on a clock the test moves."""

from __future__ import annotations

import pytest

from quiver.config.policy import RateLimit
from quiver.policy.principal import Principal
from quiver.policy.ratelimit import RateLimitedError, RateLimiter

ALICE = Principal("alice", "reader", "api_key")
BOB = Principal("bob", "reader", "api_key")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def limiter(clock: Clock, limit: RateLimit | None, **kwargs: int) -> RateLimiter:
    return RateLimiter(lambda principal: limit, clock=clock, **kwargs)


def test_a_burst_is_admitted_then_the_next_call_waits_for_a_refill(clock: Clock) -> None:
    limits = limiter(clock, RateLimit(calls_per_minute=60, burst=3))
    assert [limits.check(ALICE) for _ in range(3)] == [None, None, None]
    assert limits.check(ALICE) == pytest.approx(1.0)
    clock.now += 0.5
    assert limits.check(ALICE) == pytest.approx(0.5)
    clock.now += 0.5
    assert limits.check(ALICE) is None
    assert limits.check(ALICE) == pytest.approx(1.0)


def test_the_default_burst_is_one_minutes_worth(clock: Clock) -> None:
    limits = limiter(clock, RateLimit(calls_per_minute=5))
    assert [limits.check(ALICE) for _ in range(5)] == [None] * 5
    assert limits.check(ALICE) == pytest.approx(12.0)


def test_principals_have_their_own_buckets(clock: Clock) -> None:
    limits = limiter(clock, RateLimit(calls_per_minute=1, burst=1))
    assert limits.check(ALICE) is None
    assert limits.check(ALICE) is not None
    assert limits.check(BOB) is None
    assert limits.check(Principal("alice", None, "oauth")) is None


def test_no_limit_admits_everything_and_keeps_no_state(clock: Clock) -> None:
    limits = limiter(clock, None)
    assert all(limits.check(ALICE) is None for _ in range(1000))
    assert len(limits) == 0


def test_refused_calls_do_not_count(clock: Clock) -> None:
    limits = limiter(clock, RateLimit(calls_per_minute=60, burst=1))
    assert limits.check(ALICE) is None
    for _ in range(100):
        assert limits.check(ALICE) is not None
    clock.now += 1.0
    assert limits.check(ALICE) is None


def test_a_changed_limit_applies_at_once(clock: Clock) -> None:
    current = RateLimit(calls_per_minute=60, burst=10)
    limits = RateLimiter(lambda principal: current, clock=clock)
    assert limits.check(ALICE) is None
    current = RateLimit(calls_per_minute=6, burst=1)
    assert limits.check(ALICE) is None  # the tokens left are capped at the new burst
    assert limits.check(ALICE) == pytest.approx(10.0)


def test_idle_buckets_are_dropped(clock: Clock) -> None:
    limits = limiter(clock, RateLimit(calls_per_minute=60, burst=2))
    for n in range(100):
        assert limits.check(Principal(f"p{n}", None, "api_key")) is None
    assert len(limits) == 100
    clock.now += 2.0  # every bucket is full again
    assert limits.check(ALICE) is None
    assert len(limits) == 1


def test_the_number_of_buckets_is_capped(clock: Clock) -> None:
    limits = limiter(clock, RateLimit(calls_per_minute=1, burst=1), max_buckets=10)
    for n in range(100):
        assert limits.check(Principal(f"p{n}", None, "api_key")) is None
    assert len(limits) == 10
    assert limits.check(Principal("p99", None, "api_key")) is not None  # the most recent are kept


def test_the_error_says_who_and_when() -> None:
    error = RateLimitedError("alice", 2.01)
    assert error.code == "rate_limited"
    assert error.retryable
    assert error.message == "rate limit reached for principal alice; retry after 2.1 s"
    assert error.retry_after == pytest.approx(2.1)
    assert error.to_dict()["retryable"] is True
