"""Polling a job costs about one status request per interval, however wrong its estimated finish."""

from __future__ import annotations

import json
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


class Clock:
    """Seconds since the epoch, moved only by the poll loop's sleeps."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class Log:
    def info(self, message: str) -> None: ...

    warning = error = info


def test_waiting_for_a_new_job_asks_for_its_status_about_once_per_interval(tmp_path) -> None:
    """Against the local backend, on a clock only the poll loop moves: no status request right
    after creation, then one per interval, and the job is seen at its finish."""
    from fine_tuning.core.job_polling import wait_for_job
    from fine_tuning.core.prompts import training_example
    from local_openai.transport import local_client

    clock = Clock()
    client = local_client(tmp_path / "store", job_seconds=60.0, clock=clock, max_retries=0)
    router, handle, asked = client._local_router, client._local_router.handle, []

    def counted(request):
        if request.method == "GET" and request.path.count("/") == 4:  # /v1/fine_tuning/jobs/{id}
            asked.append(clock.now)
        return handle(request)

    router.handle = counted
    categories = ("fantasy", "horror")
    examples = [training_example(f"B{i}", "A", f"a {('dragon', 'ghost')[i % 2]} tale {i}", categories[i % 2], categories)
                for i in range(20)]
    data = "\n".join(json.dumps(e) for e in examples).encode()
    file_id = client.files.create(file=("train.jsonl", data), purpose="fine-tune").id
    job = client.fine_tuning.jobs.create(model="gpt-4o-mini-2024-07-18", training_file=file_id)
    created = clock.now
    final, _ = wait_for_job(client, job.id, Log(), poll_interval_seconds=10.0, sleep=clock.sleep, clock=clock, current=job)
    assert final.status == "succeeded"
    assert asked[0] - created >= 8.0  # the job just created stood for the first poll
    assert len(asked) <= 60 / 8.0  # one per (jittered) interval at most
    assert asked[-1] - final.finished_at <= 1.0  # waited for the estimated finish, then seen at once
