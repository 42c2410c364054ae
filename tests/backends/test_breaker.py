from __future__ import annotations

from quiver.backends.breaker import Breaker, BreakerState


def state(breaker: Breaker) -> BreakerState:
    return breaker.state  # read afresh each time: it moves with the clock


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_consecutive_failures_and_half_opens_after_the_cooldown() -> None:
    clock = Clock()
    breaker = Breaker(threshold=3, cooldown=10, clock=clock)
    for _ in range(2):
        breaker.failed("boom")
    assert state(breaker) is BreakerState.CLOSED
    assert breaker.admit()
    breaker.failed("boom")
    assert state(breaker) is BreakerState.OPEN
    assert not breaker.admit()
    assert breaker.retry_in() == 10
    clock.now = 10
    assert state(breaker) is BreakerState.HALF_OPEN
    assert breaker.admit()  # one trial
    assert not breaker.admit()  # and only one
    breaker.succeeded()
    assert state(breaker) is BreakerState.CLOSED
    assert breaker.failures == 0


def test_a_failed_trial_opens_it_again_for_longer() -> None:
    clock = Clock()
    breaker = Breaker(threshold=1, cooldown=5, clock=clock)
    breaker.failed("first")
    clock.now = 5
    assert breaker.admit()
    breaker.failed("trial")
    assert state(breaker) is BreakerState.OPEN
    assert breaker.retry_in() == 10
    assert breaker.last_failure == "trial"


def test_a_success_resets_the_count() -> None:
    breaker = Breaker(threshold=2, cooldown=5)
    breaker.failed("a")
    breaker.succeeded()
    breaker.failed("b")
    assert state(breaker) is BreakerState.CLOSED


def test_an_abandoned_trial_frees_the_slot() -> None:
    clock = Clock()
    breaker = Breaker(threshold=1, cooldown=1, clock=clock)
    breaker.failed("x")
    clock.now = 1
    assert breaker.admit()
    breaker.release()
    assert breaker.admit()
