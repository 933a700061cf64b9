"""The pure core: state machine table, decision table, properties, and its imports."""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumers.core.machine import TRANSITIONS, QPUEvent, transition
from consumers.core.order_key import order_key
from consumers.core.owner_view import Calibration, Candidate, OwnerView
from consumers.core.policy import Action, decide, estimated_duration_s, validate_admission
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


def test_only_an_idle_or_calibrating_qpu_with_nothing_running_may_start() -> None:
    starts = {(s, b) for (s, e, b) in TRANSITIONS if e is QPUEvent.START}
    assert starts == {(QPUState.IDLE, False), (QPUState.CALIBRATING, False)}


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
        assert running is None and state in (QPUState.IDLE, QPUState.CALIBRATING)
        assert decision.job in candidates and decision.job.job_id not in held_ids
        assert decision.job == min(eligible, key=lambda c: order_key(owner, c, T0))
        best_rank = min(POLICY.classes[c.job_class].rank for c in eligible)
        assert POLICY.classes[decision.job.job_class].rank == best_rank  # strict rank
    elif decision.action is Action.WAIT:
        assert (
            running is not None
            or state not in (QPUState.IDLE, QPUState.CALIBRATING)
            or not eligible
        )
    for c in candidates:
        allowed = mode in POLICY.classes[c.job_class].modes
        if state is QPUState.CALIBRATING:
            allowed = allowed and POLICY.classes[c.job_class].calibrates
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
    """A preemption happens exactly when the best eligible job's class may preempt the running
    one and the running job is under the limit; then it is for that job."""
    running = running_job("running", running_class, preemptions)
    decision = decide(view(QPUState.RUNNING, mode, running), candidates, T0)
    held_ids = {j for j, _ in decision.held}
    eligible = [c for c in candidates if c.job_id not in held_ids]
    should = bool(eligible) and preemptions < POLICY.max_preemptions
    if should:
        best = min(eligible, key=lambda c: order_key(view(QPUState.RUNNING, mode, running), c, T0))
        should = running_class in POLICY.classes[best.job_class].preempts
    assert (decision.action is Action.PREEMPT) == should, decision
    if decision.action is Action.PREEMPT:
        assert decision.job is not None
        assert running_class in POLICY.classes[decision.job.job_class].preempts
        assert preemptions < POLICY.max_preemptions
        held_ids = {j for j, _ in decision.held}
        eligible = [c for c in candidates if c.job_id not in held_ids]
        assert decision.job == min(
            eligible, key=lambda c: order_key(view(QPUState.RUNNING, mode, running), c, T0)
        )
    else:
        assert decision.action is Action.WAIT


# ---- issue 5: aging, fair share, sessions, calibration window, allocations -------------------

FAIR = Policy(
    aging_step_s=60.0, fair_share_half_life_s=600.0, shot_rate_hz=100.0, job_overhead_s=0.0
)


def fair_view(**kwargs: object) -> OwnerView:
    return OwnerView(QPUState.IDLE, Mode.PRODUCTION, FAIR, **kwargs)  # type: ignore[arg-type]


def test_waiting_raises_effective_priority_one_step_per_interval() -> None:
    new = Candidate("new", "production", 9, T0, 100)
    eight_steps = Candidate("old", "production", 0, T0 - timedelta(seconds=539), 100)  # 0 + 8 < 9
    assert decide(fair_view(), [eight_steps, new], T0).job == new
    nine_steps = Candidate("older", "production", 0, T0 - timedelta(seconds=540), 100)  # 0 + 9 = 9
    assert (
        decide(fair_view(), [nine_steps, new], T0).job == nine_steps
    )  # equal: the older goes first


def test_no_starvation_under_a_stream_of_higher_priority_jobs() -> None:
    """A priority-0 job starts within (9 + 1) aging steps although priority-9 jobs keep coming."""
    waiting = Candidate("starving", "production", 0, T0, 100)
    queue = [waiting]
    now = T0
    for tick in range(1000):
        queue.append(Candidate(f"urgent-{tick}", "production", 9, now, 100))
        chosen = decide(fair_view(), queue, now).job
        assert chosen is not None
        if chosen.job_id == "starving":
            break
        queue.remove(chosen)
        now += timedelta(seconds=1)  # each job holds the QPU 1 s
    assert chosen.job_id == "starving"
    assert (now - T0).total_seconds() <= 11 * FAIR.aging_step_s


def test_fair_share_converges_to_equal_qpu_time_for_equal_demand() -> None:
    """Two users always have work queued; alice submitted hers first. QPU time ends up even."""
    from consumers.core.fairshare import Usage

    usage = Usage(FAIR.fair_share_half_life_s)
    used = {"alice": 0.0, "bob": 0.0}
    now = T0
    for n in range(400):
        queue = [
            Candidate(f"a{n}", "production", 0, T0 - timedelta(seconds=1), 100, user="alice"),
            Candidate(f"b{n}", "production", 0, T0, 100, user="bob"),
        ]
        chosen = decide(fair_view(usage=usage.snapshot(now)), queue, now).job
        assert chosen is not None and chosen.user is not None
        duration_s = estimated_duration_s(FAIR, chosen.shots)
        used[chosen.user] += duration_s
        now += timedelta(seconds=duration_s)
        usage.add(chosen.user_key, duration_s, now)
    assert abs(used["alice"] - used["bob"]) <= 1.0 + 1e-9


def test_a_session_in_grace_goes_first_within_its_class() -> None:
    loop = Candidate("loop-next", "production", 0, T0, 100, session_id="s1")
    other = Candidate("other", "production", 5, T0 - timedelta(seconds=30), 100)
    dev = Candidate("dev", "development", 0, T0, 100, session_id="s1")
    assert decide(fair_view(sessions_in_grace=frozenset({"s1"})), [other, loop], T0).job == loop
    assert decide(fair_view(), [other, loop], T0).job == other
    assert decide(fair_view(sessions_in_grace=frozenset({"s1"})), [other, dev], T0).job == other


def test_equal_rank_classes_share_by_weight() -> None:
    policy = parse_policy(
        "[classes.a]\nrank = 1\nweight = 3.0\n[classes.b]\nrank = 1\nweight = 1.0\n"
    )
    a = Candidate("a", "a", 0, T0, 100)
    b = Candidate("b", "b", 0, T0, 100)
    view_ = OwnerView(QPUState.IDLE, Mode.PRODUCTION, policy, class_usage={"a": 20.0, "b": 10.0})
    assert decide(view_, [a, b], T0).job == a  # 20/3 < 10/1


def test_the_best_job_that_fits_the_calibration_window_is_backfilled() -> None:
    window = Calibration(epoch=3, valid_until=T0 + timedelta(seconds=10))
    long = Candidate("long", "production", 9, T0, 5000)  # 50 s at 100 shots/s
    short = Candidate("short", "development", 0, T0, 500)  # 5 s
    decision = decide(fair_view(calibration=window), [long, short], T0)
    assert decision.job == short
    assert "would outlive the calibration window by 40 s" in dict(decision.held)["long"]
    nothing = decide(fair_view(calibration=window), [long], T0)
    assert nothing.action is Action.WAIT and nothing.calibration_due
    calib = Candidate("cal", "calibration", 0, T0, 5000)
    assert decide(fair_view(calibration=window), [long, calib], T0).job == calib


def test_min_epoch_and_allocations_hold_jobs() -> None:
    needs_new = Candidate("n", "production", 0, T0, 100, min_epoch=4)
    ended = Candidate("e", "production", 0, T0, 100, allocation="77")
    late = Candidate(
        "l", "production", 0, T0, 1000, allocation="88", allocation_end=T0 + timedelta(seconds=5)
    )
    decision = decide(
        fair_view(calibration=Calibration(epoch=3), ended_allocations=frozenset({"77"})),
        [needs_new, ended, late],
        T0,
    )
    assert decision.action is Action.WAIT
    reasons = dict(decision.held)
    assert "epoch 4" in reasons["n"] and "allocation 77 has ended" in reasons["e"]
    assert "allocation 88 ends in 5 s" in reasons["l"]


@settings(max_examples=300)
@given(
    candidates=st.lists(
        st.builds(
            Candidate,
            job_id=st.uuids().map(str),
            job_class=classes,
            priority=st.integers(0, 9),
            submitted_at=st.just(T0),
            shots=st.integers(1, 5000),
            allocation=st.sampled_from([None, "1", "2"]),
        ),
        max_size=20,
        unique_by=lambda c: c.job_id,
    ),
    window_s=st.none() | st.floats(0, 60),
    ended=st.sets(st.sampled_from(["1", "2"])),
)
def test_window_and_allocation_properties(
    candidates: list[Candidate], window_s: float | None, ended: set[str]
) -> None:
    """Nothing started outlives the window while a fitting job exists; ended allocations never start."""
    valid_until = None if window_s is None else T0 + timedelta(seconds=window_s)
    view_ = fair_view(calibration=Calibration(1, valid_until), ended_allocations=frozenset(ended))
    decision = decide(view_, candidates, T0)
    if decision.action is Action.START:
        job = decision.job
        assert job is not None and job.allocation not in ended
        if valid_until is not None and not FAIR.classes[job.job_class].calibrates:
            assert estimated_duration_s(FAIR, job.shots) <= window_s  # type: ignore[operator]
    else:
        fitting = [
            c
            for c in candidates
            if c.allocation not in ended
            and (
                valid_until is None
                or FAIR.classes[c.job_class].calibrates
                or estimated_duration_s(FAIR, c.shots) <= window_s
            )  # type: ignore[operator]
        ]
        assert not fitting


def test_the_order_key_orders_the_queue_and_its_factors_are_what_queue_explain_shows() -> None:
    """Given jobs that differ in each factor, when the queue is listed, then its order is the
    order of their `OrderKey`s and each entry's factors are its key's, read back un-negated."""
    from consumers.core.step import Dispatch
    from consumers.core.view import queue_entries, view_of
    from tests.unit.core_harness import Harness

    policy = parse_policy("aging_step_s = 60\nsession_grace_s = 30\n")
    h = Harness(policy)
    first = h.submit(priority=9, session_id="loop")
    h.feed(Dispatch())
    assert h.finish_running() == first  # the session's run ended: its next job has grace
    late = h.submit(priority=1)
    session_job = h.submit(session_id="loop")
    dev = h.submit(job_class="development", priority=9)
    view = view_of(h.state, policy, h.now)
    keys = {j: order_key(view, h.state.waiting[j], h.now) for j in (late, session_job, dev)}
    entries = queue_entries(h.state, policy, h.now)
    assert [e.job_id for e in entries] == sorted(keys, key=keys.__getitem__)
    assert [e.job_id for e in entries] == [session_job, late, dev]
    for entry in entries:
        key = keys[entry.job_id]
        assert entry.factors == key.factors()
        assert entry.factors["effective_priority"] == -key.minus_priority
    assert entries[0].factors["session_grace"] is True
    assert keys[late].class_rank < keys[dev].class_rank  # strict rank beats priority 9
