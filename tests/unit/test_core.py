"""The pure core: state machine table, decision table, properties, and its imports."""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumers.core.machine import TRANSITIONS, QPUEvent, transition
from consumers.core.policy import Action, Candidate, OwnerView, decide, validate_admission
from consumers.errors import IllegalTransition
from schemas import ErrorCode, Mode, Policy, QPUState, parse_policy

T0 = datetime(2026, 1, 1, tzinfo=UTC)
POLICY = Policy()
CORE = Path(__file__).parents[2] / "consumers" / "core"


def job(job_id: str, job_class: str = "production", priority: int = 0, age_s: int = 0) -> Candidate:
    return Candidate(
        job_id, job_class, priority, T0 - timedelta(seconds=age_s), shots=100, user="alice"
    )


def view(
    state: QPUState = QPUState.IDLE, mode: Mode = Mode.PRODUCTION, running: Candidate | None = None
) -> OwnerView:
    return OwnerView(state, mode, POLICY, running)


def test_the_core_imports_no_io_clock_or_randomness() -> None:
    forbidden = {
        "pika",
        "kombu",
        "opentelemetry",
        "time",
        "random",
        "logging",
        "socket",
        "threading",
    }
    for path in CORE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in forbidden, f"{path.name} imports {name}"


@pytest.mark.parametrize(
    ("state", "event", "busy", "after"),
    [
        (QPUState.IDLE, QPUEvent.START, False, QPUState.RUNNING),
        (QPUState.RUNNING, QPUEvent.FINISH, True, QPUState.IDLE),
        (QPUState.RUNNING, QPUEvent.PAUSE, True, QPUState.PAUSED),
        (QPUState.PAUSED, QPUEvent.FINISH, True, QPUState.PAUSED),
        (QPUState.PAUSED, QPUEvent.RESUME, True, QPUState.RUNNING),
        (QPUState.PAUSED, QPUEvent.RESUME, False, QPUState.IDLE),
        (QPUState.RUNNING, QPUEvent.DRAIN, True, QPUState.DRAINING),
        (QPUState.DRAINING, QPUEvent.FINISH, True, QPUState.DRAINING),
        (QPUState.DRAINING, QPUEvent.RESUME, False, QPUState.IDLE),
        (QPUState.RUNNING, QPUEvent.BACKEND_DOWN, True, QPUState.DOWN),
        (QPUState.DOWN, QPUEvent.BACKEND_UP, False, QPUState.IDLE),
    ],
)
def test_transition_table(state: QPUState, event: QPUEvent, busy: bool, after: QPUState) -> None:
    assert transition(state, event, busy) is after


@pytest.mark.parametrize(
    ("state", "event", "busy"),
    [
        (QPUState.RUNNING, QPUEvent.START, True),
        (QPUState.PAUSED, QPUEvent.START, False),
        (QPUState.IDLE, QPUEvent.FINISH, False),
        (QPUState.DOWN, QPUEvent.START, False),
    ],
)
def test_illegal_events_name_state_and_event(state: QPUState, event: QPUEvent, busy: bool) -> None:
    with pytest.raises(IllegalTransition) as info:
        transition(state, event, busy)
    assert state.value in str(info.value) and event.value in str(info.value)


def test_only_an_idle_qpu_with_nothing_running_may_start() -> None:
    starts = [(s, b) for (s, e, b) in TRANSITIONS if e is QPUEvent.START]
    assert starts == [(QPUState.IDLE, False)]


@pytest.mark.parametrize(
    ("candidates", "expected"),
    [
        ([job("d", "development", 9), job("p", "production", 0)], "p"),
        ([job("p0", priority=0), job("p5", priority=5)], "p5"),
        ([job("new", age_s=1), job("old", age_s=100)], "old"),
        ([job("c", "calibration"), job("p", priority=9)], "c"),
    ],
)
def test_rank_then_priority_then_age(candidates: list[Candidate], expected: str) -> None:
    decision = decide(view(), candidates, T0)
    assert decision.action is Action.START
    assert decision.job is not None and decision.job.job_id == expected


@pytest.mark.parametrize(
    ("owner", "reason"),
    [
        (view(QPUState.PAUSED), "paused"),
        (view(QPUState.DRAINING), "draining"),
        (view(QPUState.DOWN), "down"),
        (view(QPUState.RUNNING, running=job("r")), "busy"),
    ],
)
def test_a_qpu_that_may_not_dispatch_starts_nothing(owner: OwnerView, reason: str) -> None:
    decision = decide(owner, [job("a")], T0)
    assert decision.action is Action.WAIT
    assert reason in decision.reason


def test_maintenance_holds_user_jobs_with_a_reason_and_runs_calibration() -> None:
    decision = decide(view(mode=Mode.MAINTENANCE), [job("p"), job("d", "development")], T0)
    assert decision.action is Action.WAIT
    assert dict(decision.held) == {
        "p": "held: maintenance mode does not run production jobs",
        "d": "held: maintenance mode does not run development jobs",
    }
    decision = decide(view(mode=Mode.MAINTENANCE), [job("p"), job("c", "calibration")], T0)
    assert decision.job is not None and decision.job.job_id == "c"


def test_admission_checks_class_submitters_and_shot_limit() -> None:
    policy = parse_policy(
        '[classes.production]\nrank = 1\nsubmitters = ["alice"]\nmax_shots = 500\n'
        "[classes.development]\nrank = 2\n"
    )
    assert validate_admission(policy, "production", "alice", 100) is None
    assert validate_admission(policy, "production", "bob", 100).code is ErrorCode.NOT_AUTHORISED
    assert validate_admission(policy, "production", "alice", 501).code is ErrorCode.TOO_MANY_SHOTS
    assert validate_admission(policy, "nope", "alice", 1).code is ErrorCode.UNKNOWN_JOB_CLASS
    assert validate_admission(policy, "development", "anyone", 10**6) is None


classes = st.sampled_from(["calibration", "production", "development"])
candidates_st = st.lists(
    st.builds(
        job,
        job_id=st.uuids().map(str),
        job_class=classes,
        priority=st.integers(0, 9),
        age_s=st.integers(0, 10_000),
    ),
    max_size=30,
    unique_by=lambda c: c.job_id,
)
states = st.sampled_from(list(QPUState))
modes = st.sampled_from(list(Mode))


@settings(max_examples=300)
@given(
    candidates=candidates_st,
    state=states,
    mode=modes,
    running=st.none() | candidates_st.map(lambda cs: cs[0] if cs else None),
)
def test_decide_properties(
    candidates: list[Candidate], state: QPUState, mode: Mode, running: Candidate | None
) -> None:
    """Never two jobs running; the best eligible starts; nothing is ever dropped."""
    owner = view(state, mode, running)
    decision = decide(owner, candidates, T0)
    held_ids = {job_id for job_id, _ in decision.held}
    eligible = [c for c in candidates if c.job_id not in held_ids]
    if decision.action is Action.START:
        assert running is None and state is QPUState.IDLE
        assert decision.job in candidates and decision.job.job_id not in held_ids
        best = min(
            eligible,
            key=lambda c: (POLICY.classes[c.job_class].rank, -c.priority, c.enqueued_at, c.job_id),
        )
        assert decision.job == best
    else:
        assert running is not None or state is not QPUState.IDLE or not eligible
    for c in candidates:
        allowed = mode in POLICY.classes[c.job_class].modes
        assert (c.job_id in held_ids) == (not allowed)


def running_job(job_id: str, job_class: str, preemptions: int = 0) -> Candidate:
    return Candidate(job_id, job_class, 0, T0, shots=100, preemptions=preemptions)


@pytest.mark.parametrize(
    ("running", "challenger", "action"),
    [
        (running_job("r", "development"), job("p", "production"), Action.PREEMPT),
        (running_job("r", "development"), job("c", "calibration"), Action.PREEMPT),
        (running_job("r", "production"), job("c", "calibration"), Action.PREEMPT),
        (running_job("r", "production"), job("d", "development", priority=9), Action.WAIT),
        (running_job("r", "production"), job("p", "production", priority=9), Action.WAIT),
        (running_job("r", "calibration"), job("c", "calibration", priority=9), Action.WAIT),
        (running_job("r", "development", preemptions=2), job("p", "production"), Action.WAIT),
    ],
)
def test_preemption_only_along_allowed_edges_and_up_to_the_limit(
    running: Candidate, challenger: Candidate, action: Action
) -> None:
    decision = decide(view(QPUState.RUNNING, running=running), [challenger], T0)
    assert decision.action is action
    if action is Action.PREEMPT:
        assert decision.job == challenger and running.job_id in decision.reason


def test_a_qpu_already_preempting_waits_for_the_stop() -> None:
    decision = decide(
        view(QPUState.PREEMPTING, running=running_job("r", "development")), [job("p")], T0
    )
    assert decision.action is Action.WAIT


@settings(max_examples=300)
@given(
    candidates=candidates_st,
    running_class=classes,
    preemptions=st.integers(0, 4),
    mode=modes,
)
def test_preemption_properties(
    candidates: list[Candidate], running_class: str, preemptions: int, mode: Mode
) -> None:
    """A preemption is only ever for the best eligible job, along an allowed edge, under the limit."""
    running = running_job("running", running_class, preemptions)
    decision = decide(view(QPUState.RUNNING, mode, running), candidates, T0)
    if decision.action is Action.PREEMPT:
        assert decision.job is not None
        assert running_class in POLICY.classes[decision.job.job_class].preempts
        assert preemptions < POLICY.max_preemptions
        held_ids = {j for j, _ in decision.held}
        eligible = [c for c in candidates if c.job_id not in held_ids]
        assert decision.job == min(
            eligible,
            key=lambda c: (POLICY.classes[c.job_class].rank, -c.priority, c.enqueued_at, c.job_id),
        )
    else:
        assert decision.action is Action.WAIT
