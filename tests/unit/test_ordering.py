"""`ordering = "fifo"` per class: first accepted, first served within the class, whatever the
priority, the submitters' usage, a session's grace or a site term; `qsched simulate --ordering`
compares it with fair share on a recorded history."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumers.core.owner_view import Candidate, OwnerView
from consumers.core.policy import decide, decide_indexed
from consumers.core.step import Dispatch
from consumers.core.view import view_of
from consumers.tools.eventlog.reader import LogRecord
from consumers.tools.simulate.cli import with_orderings
from consumers.tools.simulate.engine import simulate
from consumers.tools.simulate.history import read_history
from consumers.tools.simulate.metrics import compare, start_order
from schemas.enums import Mode, Ordering, QPUState
from schemas.envelope import Event
from schemas.policy import Policy, parse_policy
from tests.support.eventlogs import activated, control, final, queued, started
from tests.unit.core_harness import T0, Harness
from tests.unit.test_owner_state import RANDOM_POLICY

FIFO = parse_policy('[classes.production]\nrank = 1\nordering = "fifo"\n')
FAIR = parse_policy("[classes.production]\nrank = 1\n")


def _view(policy: Policy, **kwargs: object) -> OwnerView:
    return OwnerView(QPUState.IDLE, Mode.PRODUCTION, policy, **kwargs)  # type: ignore[arg-type]


def _job(
    job_id: str, age_s: float, priority: int = 0, user: str = "alice", **kw: object
) -> Candidate:
    at = T0 - timedelta(seconds=age_s)
    return Candidate(job_id, "production", priority, at, 100, user, accepted_at=at, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("newer", "why"),
    [
        (_job("new", 10, priority=9), "a higher AMQP priority"),
        (_job("new", 10, user="bob"), "a submitter with no usage"),
        (_job("new", 10, session_id="s1"), "a session in its grace window"),
        (_job("new", 10, site_term=5.0), "a higher site term"),
    ],
)
def test_fifo_serves_the_first_accepted_job_first(newer: Candidate, why: str) -> None:
    """Given an older job of alice (who used the QPU) and a newer one that fair share would put
    first (`why`), FIFO starts the older one and fair share the newer one."""
    older = _job("old", 20)
    usage = {"/alice": 5000.0}  # fair-share key: account/user
    grace = frozenset({"s1"})
    fifo = decide(_view(FIFO, usage=usage, sessions_in_grace=grace), [newer, older], T0)
    fair = decide(_view(FAIR, usage=usage, sessions_in_grace=grace), [newer, older], T0)
    assert fifo.job == older, why
    assert fair.job == newer, why


def test_the_ordering_is_per_class_and_rank_still_comes_first() -> None:
    policy = parse_policy(
        '[classes.production]\nrank = 1\nordering = "fifo"\n[classes.development]\nrank = 2\n'
    )
    dev = Candidate("dev", "development", 0, T0 - timedelta(hours=1), 100, "alice")
    prod = _job("prod", 1)
    assert decide(_view(policy), [dev, prod], T0).job == prod
    assert policy.classes["development"].ordering is Ordering.FAIR_SHARE


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_the_index_picks_what_the_reference_order_picks_under_fifo(seed: int) -> None:
    from tests.unit.test_owner_state import random_history

    policy = with_orderings(parse_policy(RANDOM_POLICY), ("development=fifo", "production=fifo"))
    h = random_history(seed, steps=150, policy=policy)
    rng = random.Random(seed)
    for _ in range(5):
        h.now += timedelta(seconds=rng.uniform(0, 120))
        view = view_of(h.state, h.policy, h.now)
        reference = decide(view, list(h.state.waiting.values()), h.now)
        indexed = decide_indexed(view, h.state.index, h.now)
        assert (indexed.action, indexed.job) == (reference.action, reference.job), seed
        h.feed(Dispatch())
        h.finish_running()


def test_a_fifo_class_runs_a_users_backlog_in_acceptance_order_in_the_owner_core() -> None:
    h = Harness(FIFO)
    first = h.submit(user="alice", priority=0)
    second = h.submit(user="bob", priority=9)
    third = h.submit(user="carol", priority=5)
    assert h.run_all() == [first, second, third]


def _history() -> list[Event]:
    """Alice used the QPU for 49 s; while paused she and then bob queue a job; fair share ran
    bob's first."""
    a, b, c = (f"{n}0000000-aaaa-bbbb-cccc-000000000000" for n in "abc")
    return [
        activated(0, 1),
        queued(a, 1, "production", "alice"),
        started(a, 1.01),
        final(a, 50),
        control("pause", 51),
        queued(b, 52, "production", "alice"),
        queued(c, 53, "production", "bob"),
        control("resume", 54),
        started(c, 54.01, user="bob"),
        final(c, 55),
        started(b, 55.01),
        final(b, 56),
    ]


def test_simulate_compares_fifo_with_fair_share_on_a_recorded_log() -> None:
    events = _history()
    records = [LogRecord(i, e) for i, e in enumerate(events)]
    fair = Policy()
    fifo = with_orderings(fair, ("fifo",))
    assert {c.ordering for c in fifo.classes.values()} == {Ordering.FIFO}
    same = simulate(fair, read_history(records, fair, None, 0.2))
    assert compare(events, same)["start_order"]["same"]
    other = simulate(fifo, read_history(records, fifo, None, 0.2))
    report = compare(events, other)
    assert start_order(other)[1:] == [events[5].job_id, events[6].job_id]  # alice's, then bob's
    assert report["start_order"]["first_difference"] == 2


@pytest.mark.parametrize(
    ("given_", "says"),
    [(("lifo",), "the ordering is one of fair-share, fifo"), (("nope=fifo",), "no class 'nope'")],
)
def test_a_wrong_ordering_option_is_named(given_: tuple[str, ...], says: str) -> None:
    with pytest.raises(ValueError, match=says):
        with_orderings(Policy(), given_)
