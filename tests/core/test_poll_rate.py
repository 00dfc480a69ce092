"""Polling a job costs about one status request per interval, however wrong its estimated finish."""

from __future__ import annotations

import random

import pytest

from fine_tuning.core.job_polling import MIN_POLL_SECONDS, next_poll_delay


def polls_until(end: float, interval: float, estimated_finish: int | None, start: float = 0.0) -> list[float]:
    """The times a poll loop following next_poll_delay looks at a job that finishes at `end`."""
    rng, now, times = random.Random(1), start, []
    while True:
        times.append(now)
        if now >= end:
            return times
        now += next_poll_delay(interval, estimated_finish, now, rng)


@pytest.mark.parametrize("overrun", [0.0, 0.3, 5.0, 60.0, 3600.0])
def test_a_job_overrunning_its_estimate_costs_about_one_poll_per_interval(overrun: float) -> None:
    interval, estimate = 10.0, 600
    times = polls_until(estimate + overrun, interval, estimate)
    # Before the estimate: one poll per (jittered) interval and one at the estimate itself.
    before = [t for t in times if t < estimate]
    assert len(before) <= estimate / (0.8 * interval) + 2
    # After it: a few quick looks (doubling from the floor), then one per interval.
    after = [t for t in times if t >= estimate]
    assert len(after) <= overrun / (0.8 * interval) + 8
    if overrun == 0:  # a right estimate is waited for: one poll at the finish, none just before it
        assert after == [estimate] and estimate - before[-1] > 0.4 * interval
    # And the job is seen soon after it ends: within the floor just after the estimate,
    # otherwise within one interval.
    assert times[-1] - (estimate + overrun) <= max(MIN_POLL_SECONDS, min(1.2 * interval, overrun + MIN_POLL_SECONDS))


def test_without_an_estimate_polls_follow_the_jittered_interval() -> None:
    times = polls_until(1000.0, 10.0, None)
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert all(8.0 <= gap <= 12.0 for gap in gaps)
    assert 1000 / 12 <= len(gaps) <= 1000 / 8 + 1
