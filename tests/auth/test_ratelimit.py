"""The failed-login limiter: engages at the limit, releases when the window passes."""

from __future__ import annotations

from packhouse.auth.ratelimit import FailureLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_engages_at_the_limit_and_releases_after_the_window() -> None:
    clock = FakeClock()
    limiter = FailureLimiter(3, 60, clock)
    for _ in range(2):
        limiter.failed(["user:a"])
        clock.now += 1
    assert limiter.retry_after(["user:a"]) == 0
    limiter.failed(["user:a"])
    # the first failure (at 1000) keeps the key limited until 1060
    assert limiter.retry_after(["user:a"]) == 58
    assert limiter.retry_after(["user:b"]) == 0
    clock.now = 1060.0
    assert limiter.retry_after(["user:a"]) == 0


def test_any_limited_key_limits_the_attempt() -> None:
    clock = FakeClock()
    limiter = FailureLimiter(2, 10, clock)
    limiter.failed(["user:a", "addr:1.2.3.4"])
    limiter.failed(["user:b", "addr:1.2.3.4"])
    assert limiter.retry_after(["user:c", "addr:1.2.3.4"]) == 10
    assert limiter.retry_after(["user:c", "addr:5.6.7.8"]) == 0


def test_sliding_window_keeps_only_recent_failures() -> None:
    clock = FakeClock()
    limiter = FailureLimiter(2, 10, clock)
    limiter.failed(["k"])
    clock.now += 8
    limiter.failed(["k"])
    assert limiter.retry_after(["k"]) == 2
    clock.now += 2
    assert limiter.retry_after(["k"]) == 0  # the first failure aged out
    limiter.failed(["k"])
    assert limiter.retry_after(["k"]) == 8


def test_an_attempt_is_counted_before_it_is_verified_and_forgiven_on_success() -> None:
    clock = FakeClock()
    limiter = FailureLimiter(2, 10, clock)
    keys = ["user:a", "addr:1.2.3.4"]
    assert limiter.attempt(keys) == 0
    assert limiter.attempt(keys) == 0  # two in flight: the limit is reached
    assert limiter.attempt(keys) == 10  # a third is refused before verifying
    limiter.forgive(keys)  # one of them succeeded
    assert limiter.retry_after(keys) == 0
    assert limiter.attempt(["user:b", "addr:1.2.3.4"]) == 0
    assert limiter.attempt(["user:c", "addr:1.2.3.4"]) == 10  # the address is at the limit
