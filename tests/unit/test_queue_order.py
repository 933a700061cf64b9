"""The lazy walk of the backlog in order (`consumers.core.ordered`) and `queue_entries` on it
agree with sorting every waiting job (issue 19, finding 7: `queue --limit 5` sorted 100,000)."""

from __future__ import annotations

import random
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from consumers.core.order_key import order_key
from consumers.core.ordered import in_order
from consumers.core.policy import estimated_duration_s, hold_reason
from consumers.core.step import Command, Dispatch
from consumers.core.view import ETA_STATES, queue_entries, running_left_s, view_of
from schemas.control import ControlCommand
from schemas.enums import CommandName
from tests.unit.core_harness import Harness
from tests.unit.test_owner_state import random_history


def reference_rows(h: Harness) -> list[tuple[str, int | None, float | None, str | None]]:
    """(job, position, ETA, hold) of every waiting job: sort all, startable first (the order
    `queue` showed before the walk)."""
    view = view_of(h.state, h.policy, h.now)
    ordered = sorted(h.state.waiting.values(), key=lambda j: order_key(view, j, h.now))
    ahead_s = running_left_s(h.state, h.policy, h.now)
    measured = h.state.shot_rate.costs(h.policy.job_overhead_s)  # ETAs: the measured rate
    startable, held = [], []
    position = 0
    for job in ordered:
        reason = hold_reason(view, job, h.now)
        if reason is None:
            position += 1
            eta = round(ahead_s, 3) if h.state.qpu in ETA_STATES else None
            startable.append((job.job_id, position, eta, None))
            ahead_s += estimated_duration_s(h.policy, job.remaining_shots, measured)
        else:
            held.append((job.job_id, None, None, reason))
    return startable + held


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), limit=st.integers(1, 12))
def test_the_walk_and_the_queue_agree_with_sorting_everything(seed: int, limit: int) -> None:
    """Given a seeded history (sessions in grace, holds, classes, priorities, site terms), then
    the walk yields the sorted backlog, and `queue_entries` with and without a limit and a
    user filter gives the reference rows."""
    h = random_history(seed, steps=150)
    rng = random.Random(seed)
    for _ in range(4):
        h.now += timedelta(seconds=rng.choice([rng.uniform(0, 5), rng.uniform(0, 120)]))
        view = view_of(h.state, h.policy, h.now)
        walked = [job.job_id for job, _ in in_order(view, h.state.index, h.now)]
        by_key = sorted(h.state.waiting.values(), key=lambda j: order_key(view, j, h.now))
        assert walked == [j.job_id for j in by_key], seed
        expected = reference_rows(h)
        rows = [
            (e.job_id, e.position, e.eta_s, e.held) for e in queue_entries(h.state, h.policy, h.now)
        ]
        assert rows == expected, seed
        limited = queue_entries(h.state, h.policy, h.now, limit=limit)
        assert [(e.job_id, e.position, e.eta_s, e.held) for e in limited] == expected[:limit]
        alice = {j for j, *_ in expected if h.state.waiting[j].user == "alice"}
        mine = queue_entries(h.state, h.policy, h.now, user="alice", limit=limit)
        assert [e.job_id for e in mine] == [j for j, *_ in expected if j in alice][:limit]
        some = set(rng.sample(sorted(h.state.waiting), min(3, len(h.state.waiting))))
        picked = queue_entries(h.state, h.policy, h.now, job_ids=some)
        assert [(e.job_id, e.position) for e in picked] == [
            (j, p) for j, p, *_ in expected if j in some
        ]
        h.feed(Dispatch())
        h.finish_running()


def test_the_default_policy_refuses_one_users_flood_naming_the_limit_and_the_count() -> None:
    """Given the default policy, when one user queues past 2,000 waiting jobs, then the next
    is REJECTED (BACKLOG_LIMIT) naming the limit and the count, and another user's job is
    still accepted."""
    from schemas.enums import ErrorCode, JobState
    from schemas.events import Topic
    from schemas.policy import DEFAULT_MAX_WAITING_PER_USER, Policy

    policy = Policy()
    assert policy.max_waiting_per_user == DEFAULT_MAX_WAITING_PER_USER == 2_000
    assert policy.max_waiting_total == 100_000
    h = Harness(policy)
    h.feed(Command(ControlCommand(command=CommandName.PAUSE), "guest"))  # nothing starts
    for _ in range(DEFAULT_MAX_WAITING_PER_USER):
        h.submit(user="flood", shots=1)
    over = h.submit(user="flood", shots=1)
    refused = next(e for e in h.log if e.topic == Topic.JOB_REJECTED and e.job_id == over)
    assert refused.result is not None and refused.result.error is not None
    assert refused.result.error.code is ErrorCode.BACKLOG_LIMIT
    assert "user flood" in refused.result.error.message
    assert "2000 of 2000 jobs waiting" in refused.result.error.message
    other = h.submit(user="alice", shots=1)
    assert other in h.state.waiting and h.state.finished.get(over) is JobState.REJECTED
