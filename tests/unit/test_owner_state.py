"""The event-sourced core: `apply`, `step`, snapshots and the order index, without a broker."""

from __future__ import annotations

import json
import random
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from consumers.core.commands import Command
from consumers.core.order import Waiting
from consumers.core.policy import decide, decide_indexed
from consumers.core.snapshot import from_data, to_data
from consumers.core.state import OwnerState
from consumers.core.step import (
    Arrival,
    Dispatch,
    Finished,
    Invalidated,
    LaneDispatch,
    Progress,
    Readmitted,
    Tick,
    step,
)
from consumers.core.view import queue_entries, view_of
from schemas.control import ControlCommand
from schemas.enums import CommandName, ErrorCode, JobState, QPUState
from schemas.envelope import Event
from schemas.events import CalibrationEpoch, Topic, make_event
from schemas.jobs import JobError, JobRequest, SlurmContext
from schemas.policy import Policy, parse_policy
from tests.unit.core_harness import CTX, SEQ, T0, Harness


def test_given_40_jobs_of_alice_then_2_of_bob_when_dispatching_then_bob_starts_second_and_third() -> (
    None
):
    h = Harness()
    for _ in range(40):
        h.submit("alice")
    bobs = [h.submit("bob"), h.submit("bob")]
    order = h.run_all()
    assert {order[1], order[2]} == set(bobs) or {order[1], order[3]} == set(bobs), order[:5]


def test_a_job_held_for_a_later_epoch_never_blocks_the_jobs_behind_it() -> None:
    h = Harness()
    held = h.submit(min_epoch=1)
    normal = [h.submit() for _ in range(40)]
    order = h.run_all()
    assert order == normal and held in h.state.waiting


def test_aging_at_depth_a_priority_0_job_overtakes_80_priority_9_jobs() -> None:
    h = Harness()
    old = h.submit(priority=0)
    h.now += timedelta(seconds=60 * 10)  # 10 aging steps: effective priority 10 > 9
    urgent = [h.submit(priority=9) for _ in range(80)]
    assert h.run_all()[0] == old and len(urgent) == 80


def test_a_short_job_deep_in_the_queue_is_backfilled_into_the_calibration_window() -> None:
    policy = parse_policy("calibration_valid_s = 10\nshot_rate_hz = 10\njob_overhead_s = 0\n")
    h = Harness(policy)
    h.emit([make_event(Topic.CALIBRATION_STARTED, CalibrationEpoch(epoch=0), reason="")])
    h.feed(Command(ControlCommand(command=CommandName.CALIBRATION_COMPLETE), "guest"))
    long_jobs = [h.submit(shots=1000) for _ in range(40)]  # 100 s each: never fit
    short = h.submit(shots=20)  # 2 s
    h.feed(Dispatch())
    assert h.started == [short] and all(j in h.state.waiting for j in long_jobs)


def test_hierarchical_fair_share_balances_accounts_then_users_within_an_account() -> None:
    h = Harness()
    for n in range(60):
        for user, account in (("a1", "phys"), ("a2", "phys"), ("c1", "chem")):
            h.submit(user, slurm=SlurmContext(job_id=f"{user}-{n}", account=account))
    order = h.run_all()
    first = order[:30]
    users = [h.state.owners[j] for j in first]
    # chem's one user gets as much QPU time as phys's two users together
    assert abs(users.count("c1") - (users.count("a1") + users.count("a2"))) <= 2
    assert abs(users.count("a1") - users.count("a2")) <= 2


def test_cancel_by_the_submitter_at_depth_takes_effect_at_once_and_another_user_cannot() -> None:
    h = Harness()
    jobs = [h.submit("alice") for _ in range(50)]
    target = jobs[45]
    effects = h.feed(Command(ControlCommand(command=CommandName.CANCEL, job_id=target), "mallory"))
    reply = effects[-1].message  # type: ignore[attr-defined]
    assert not reply.ok and reply.error.code is ErrorCode.NOT_AUTHORISED
    assert target in h.state.waiting
    effects = h.feed(Command(ControlCommand(command=CommandName.CANCEL, job_id=target), "alice"))
    assert effects[-1].message.ok  # type: ignore[attr-defined]
    assert h.state.finished[target] is JobState.CANCELED and target not in h.state.waiting


def test_deadline_and_max_runtime_end_jobs_timed_out() -> None:
    policy = parse_policy("[classes.production]\nrank = 1\nmax_runtime_s = 5\n")
    h = Harness(policy)
    running = h.submit()
    late = h.submit(deadline=T0 + timedelta(seconds=3))
    h.feed(Dispatch())
    h.now += timedelta(seconds=4)
    h.feed(Tick())
    assert h.state.finished[late] is JobState.TIMED_OUT
    h.now += timedelta(seconds=2)
    h.feed(Tick())
    assert h.state.running is not None and h.state.running.stop_state is JobState.TIMED_OUT
    h.feed(Finished(running, {"0": 3}, canceled=True))
    assert h.state.finished[running] is JobState.TIMED_OUT


def test_a_policy_that_drops_a_class_holds_its_waiting_jobs_and_lets_its_running_one_end() -> None:
    h = Harness()
    running = h.submit(job_class="development")
    waiting = h.submit(job_class="development")
    other = h.submit(job_class="production", shots=10)
    h.feed(Dispatch())  # production ranks first
    assert h.state.running is not None and h.state.running.job.job_id == other
    h.finish_running()
    h.feed(Dispatch())
    assert h.state.running is not None and h.state.running.job.job_id == running
    h.policy = parse_policy(
        "aging_step_s = 60\nshot_rate_hz = 100\njob_overhead_s = 0\n"
        "[classes.production]\nrank = 1\n"
    )
    h.now += timedelta(hours=1)
    h.feed(Tick())  # the running job's class limits are gone: no crash, it runs on
    assert h.finish_running() == running
    h.feed(Dispatch())
    assert h.state.running is None and waiting in h.state.waiting
    decision = decide_indexed(view_of(h.state, h.policy, h.now), h.state.index, h.now)
    assert decision.job is None
    reasons = dict(
        decide(view_of(h.state, h.policy, h.now), list(h.state.waiting.values()), h.now).held
    )
    assert "class 'development' is not in the policy" in reasons[waiting]


def test_backlog_limits_refuse_with_the_limit_named() -> None:
    h = Harness(parse_policy("max_waiting_per_user = 2\n"))
    h.submit("alice")
    h.submit("alice")
    job = JobRequest(job_class="production", shots=10, sequence=SEQ)
    events, _effects = step(h.state, h.policy, Arrival(job, "alice", "r"), h.now, CTX)
    assert events[0].topic == Topic.JOB_REJECTED
    assert events[0].result.error.code is ErrorCode.BACKLOG_LIMIT  # type: ignore[union-attr]
    assert "user alice" in events[0].result.error.message  # type: ignore[union-attr]


def test_a_job_id_belongs_to_its_first_submitter() -> None:
    h = Harness()
    mine = h.submit("alice")
    job = JobRequest(job_id=mine, job_class="production", shots=10, sequence=SEQ)
    events, _ = step(h.state, h.policy, Arrival(job, "mallory", "r"), h.now, CTX)
    assert [e.job_id for e in events] == [None]  # the refusal names no job of alice's
    h.emit(events)
    assert h.state.owners[mine] == "alice" and mine in h.state.waiting


def test_queue_positions_and_eta_decrease_as_jobs_run() -> None:
    h = Harness()
    jobs = [h.submit() for _ in range(5)]
    first = {e.job_id: e for e in queue_entries(h.state, h.policy, h.now)}
    assert [first[j].position for j in jobs] == [1, 2, 3, 4, 5]
    h.feed(Dispatch())
    h.finish_running()
    h.feed(Dispatch())
    later = {e.job_id: e for e in queue_entries(h.state, h.policy, h.now)}
    assert later[jobs[4]].position == 3
    assert later[jobs[4]].eta_s is not None and first[jobs[4]].eta_s is not None


def test_a_run_left_by_a_dead_owner_waits_again_and_keeps_its_shots() -> None:
    h = Harness()
    job = h.submit(shots=100)
    h.feed(Dispatch())
    h.feed(Progress(job, {"0": 40}))
    h.activate()  # a new owner: term 2
    assert h.state.running is None and h.state.waiting[job].prior_counts == {"0": 40}
    effects = h.feed(Dispatch())
    assert effects[0].shots == 60 and effects[0].attempt == 2  # type: ignore[attr-defined]


def test_events_of_a_stale_term_are_ignored() -> None:
    h = Harness()
    job = h.submit()
    h.activate()  # term 2
    stale = make_event(Topic.JOB_CANCELED, job_id=job, user="alice").model_copy(update={"term": 1})
    h.state.apply(stale)
    assert job in h.state.waiting and h.state.ignored >= 1


def test_after_failover_while_paused_the_state_stays_paused_and_nothing_crashes() -> None:
    h = Harness()
    h.submit()
    h.feed(Dispatch())
    h.feed(Command(ControlCommand(command=CommandName.PAUSE), "guest"))
    h.activate()
    assert h.state.qpu is QPUState.PAUSED and h.state.running is None
    h.feed(Dispatch())
    assert h.state.running is None


RANDOM_POLICY = """
aging_step_s = 30
max_waiting_total = 50
[lanes]
emulators = 2
[classes.calibration]
rank = 0
preempts = ["production", "development"]
calibrates = true
[classes.production]
rank = 1
preempts = ["development"]
modes = ["production", "development"]
[classes.development]
rank = 2
modes = ["production", "development"]
placement = { production = "either", development = "either", maintenance = "emulator" }
"""


def random_history(seed: int, steps: int = 200, policy: Policy | None = None) -> Harness:
    """A seeded mix of arrivals, dispatches, progress, finishes, commands and failovers."""
    rng = random.Random(seed)
    h = Harness(policy or parse_policy(RANDOM_POLICY))
    for _ in range(steps):
        h.now += timedelta(seconds=rng.uniform(0, 5))
        roll = rng.random()
        if roll < 0.35:
            h.submit(
                rng.choice(["alice", "bob", "carol"]),
                job_class=rng.choice(["production", "development", "calibration"]),
                priority=rng.randint(0, 9),
                shots=rng.randint(1, 300),
                session_id=rng.choice([None, "s1", "s2"]),
                hold=rng.choice([None, None, None, "admission plugin quota: over budget"]),
                site_term=rng.choice([None, 0.0, 1.0, -2.5]),
                require_qpu=rng.random() < 0.2,
            )
        elif roll < 0.45 and (h.state.lanes or rng.random() < 0.5):
            lane = rng.choice(["emulator-1", "emulator-2"])
            run = h.state.lanes.get(lane)
            if run is None:
                h.feed(LaneDispatch(lane, f"specs-{h.state.epoch}"))
            else:
                h.feed(Finished(run.job.job_id, {"1": run.job.remaining_shots}))
        elif roll < 0.5 and h.state.waiting:
            target = rng.choice(sorted(h.state.waiting))
            answer = rng.choice(
                [
                    Readmitted(target),
                    Readmitted(target, hold="admission plugin quota: still over"),
                    Readmitted(
                        target, refusal=JobError(code=ErrorCode.ADMISSION_REFUSED, message="no")
                    ),
                ]
            )
            h.feed(answer)
        elif roll < 0.6:
            h.feed(Dispatch())
        elif roll < 0.75 and h.state.running is not None:
            run = h.state.running
            h.feed(
                Finished(
                    run.job.job_id, {"1": run.job.remaining_shots}, canceled=rng.random() < 0.2
                )
            )
        elif roll < 0.8 and h.state.running is not None:
            h.feed(Progress(h.state.running.job.job_id, {"0": 1}))
        elif roll < 0.85:
            name = rng.choice([CommandName.PAUSE, CommandName.RESUME, CommandName.DRAIN])
            h.feed(Command(ControlCommand(command=name), "guest"))
        elif roll < 0.9 and h.state.waiting:
            target = rng.choice(sorted(h.state.waiting))
            h.feed(Command(_job_command(rng, target), rng.choice(["guest", "alice", "bob"])))
        elif roll < 0.91 and h.state.running is not None:
            requeue = ControlCommand(command=CommandName.REQUEUE, job_id=h.state.running.job.job_id)
            h.feed(Command(requeue, "guest"))
        elif roll < 0.93:
            h.activate()
        else:
            h.feed(Tick())
    return h


def _job_command(rng: random.Random, job_id: str) -> ControlCommand:
    """A random per-job command (cancel, hold, release, update) for a waiting job."""
    name = rng.choice(
        [CommandName.CANCEL, CommandName.HOLD, CommandName.RELEASE, CommandName.UPDATE]
    )
    if name is CommandName.UPDATE:
        return ControlCommand(
            command=name,
            job_id=job_id,
            priority=rng.randint(0, 9),
            job_class=rng.choice([None, "production", "development"]),
        )
    return ControlCommand(command=name, job_id=job_id)


def fold(events: list[Event], half_life_s: float) -> OwnerState:
    state = OwnerState.for_half_life(half_life_s)
    for event in events:
        state.apply(event)
    return state


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), cut=st.floats(0, 1))
def test_apply_is_deterministic_and_snapshot_plus_tail_equals_the_full_log(
    seed: int, cut: float
) -> None:
    h = random_history(seed)
    half_life = h.policy.fair_share_half_life_s
    full = to_data(fold(h.log, half_life))
    assert full == to_data(fold(h.log, half_life)) == to_data(h.state)
    at = int(cut * len(h.log))
    snapshot = json.loads(json.dumps(to_data(fold(h.log[:at], half_life))))
    resumed = from_data(snapshot, half_life)
    for event in h.log[at:]:
        resumed.apply(event)
    assert to_data(resumed) == full


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_the_index_always_picks_the_job_the_reference_order_picks(seed: int) -> None:
    h = random_history(seed, steps=150)
    rng = random.Random(seed)
    for _ in range(5):
        h.now += timedelta(seconds=rng.uniform(0, 120))
        view = view_of(h.state, h.policy, h.now)
        reference = decide(view, list(h.state.waiting.values()), h.now)
        indexed = decide_indexed(view, h.state.index, h.now)
        assert (indexed.action, indexed.job) == (reference.action, reference.job), seed
        h.feed(Dispatch())
        h.finish_running()


def test_every_accepted_job_ends_exactly_once_across_seeded_histories() -> None:
    for seed in range(30):
        h = random_history(seed, steps=300)
        h.feed(Command(ControlCommand(command=CommandName.RESUME), "guest"))
        h.run_all()
        finals = [e.job_id for e in h.log if e.result is not None and e.job_id]
        assert len(finals) == len(set(finals)), seed
        accepted = {e.job_id for e in h.log if e.topic == Topic.JOB_ACCEPTED}
        on_lanes = {run.job.job_id for run in h.state.lanes.values()}
        assert accepted - set(finals) == {j for j in h.state.waiting} | on_lanes | (
            {h.state.running.job.job_id} if h.state.running else set()
        ), seed


def test_waiting_facts_are_small() -> None:
    job = Waiting("x" * 36, "production", user="alice")
    assert not hasattr(job, "__dict__")  # slots: no per-instance dict


def test_after_a_calibration_the_core_asks_for_a_recheck_before_a_job_starts() -> None:
    """Given a job checked at epoch 0 and a calibration since, when the QPU and a lane decide,
    then the core asks the shell to re-check its sequence (no event yet); a passing check lets it
    start, a failing one (`Invalidated`) ends it REJECTED."""
    from consumers.core.outcomes import Recheck, StartRun

    policy = parse_policy(RANDOM_POLICY)  # development may run on the QPU or a lane
    h = Harness(policy)
    h.feed(Command(ControlCommand(command=CommandName.CALIBRATION_START), "guest"))
    good, bad = h.submit(job_class="development"), h.submit(job_class="development")
    h.feed(Command(ControlCommand(command=CommandName.CALIBRATION_COMPLETE), "guest"))
    before = len(h.log)
    events, effects = step(h.state, h.policy, Dispatch(), h.now, CTX)
    assert events == [] and [type(e) for e in effects] == [Recheck]
    assert isinstance(effects[0], Recheck) and effects[0].job.job_id == good
    lane = LaneDispatch(policy.lanes.names[0], "digest")
    _, lane_effects = step(h.state, h.policy, lane, h.now, CTX)
    assert [type(e) for e in lane_effects] == [Recheck]
    problem = JobError(code=ErrorCode.TOO_MANY_SHOTS, message="the new device takes fewer")
    h.feed(Invalidated(bad, problem))
    events, effects = step(h.state, h.policy, Dispatch(checked=good), h.now, CTX)
    assert [e.topic for e in events] == [Topic.JOB_STARTED] and events[0].job_id == good
    assert isinstance(effects[0], StartRun)
    assert [e.topic for e in h.log[before:]] == [Topic.JOB_REJECTED]
