"""The QPU-time ledger: its arithmetic from tables, and (hypothesis) its totals equal the runs
the results list in any history the core writes, QPU and emulator lanes apart, after a failover
(snapshot + tail, or a full fold) as before."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumers.core.ledger import Ledger, Totals, run_totals, total_of
from consumers.core.order import Waiting
from consumers.core.snapshot import from_data, to_data
from consumers.core.state import OwnerState
from consumers.core.step import Command, Dispatch, Finished, LaneDispatch
from schemas.control import ControlCommand
from schemas.enums import CommandName, ErrorCode
from schemas.envelope import Event
from schemas.events import FINAL_TOPICS
from schemas.jobs import JobError, RunInterval, SlurmContext
from schemas.policy import parse_policy
from tests.unit.core_harness import Harness
from tests.unit.simulation import POLICY as WORLD_POLICY
from tests.unit.simulation import World

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
FINALS = {topic.value for topic in FINAL_TOPICS.values()}
LANE_POLICY = parse_policy(
    "shot_rate_hz = 100\njob_overhead_s = 0\nmax_preemptions = 3\n"
    "[accounts]\ndefault = { alice = 'phys', bob = 'chem', '*' = 'misc' }\n"
    "[lanes]\nemulators = 1\n"
    "[classes.production]\nrank = 1\npreempts = ['development']\n"
    "[classes.development]\nrank = 2\nplacement = { production = 'either' }\n"
)


def _job(user: str = "alice", account: str | None = "phys", job_class: str = "dev") -> Waiting:
    return Waiting("j", job_class, user=user, account=account, allocation="77")


def _interval(start_s: float, seconds: float, lane: str | None = None, outcome: str = "DONE"):
    started = T0 + timedelta(seconds=start_s)
    return RunInterval(
        started_at=started,
        ended_at=started + timedelta(seconds=seconds),
        lane=lane,
        outcome=outcome,
    )


# ---- arithmetic ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("interval", "shots", "expected"),
    [
        (_interval(0, 12.5), 100, Totals(runs=1, shots=100, qpu_s=12.5)),
        (
            _interval(0, 3, outcome="preempted"),
            40,
            Totals(runs=1, shots=40, qpu_s=3, preemptions=1),
        ),
        (_interval(0, 7, lane="emulator-1"), 9, Totals(lane_runs=1, lane_shots=9, emulator_s=7)),
        (_interval(0, 2), -5, Totals(runs=1, shots=0, qpu_s=2)),  # never negative shots
    ],
)
def test_a_run_counts_as_qpu_time_or_emulator_time_never_both(
    interval: RunInterval, shots: int, expected: Totals
) -> None:
    assert run_totals(interval, shots) == expected


def test_report_groups_filters_and_rounds_the_period_out_to_whole_hours() -> None:
    ledger = Ledger()
    ledger.charge(_job("alice", "phys"), T0 + timedelta(minutes=5), Totals(runs=1, qpu_s=10))
    ledger.charge(_job("bob", "phys"), T0 + timedelta(minutes=50), Totals(runs=1, qpu_s=5))
    ledger.charge(_job("carol", "chem"), T0 + timedelta(hours=1, minutes=1), Totals(qpu_s=7))
    ledger.charge(_job("dave", None, "prod"), T0 + timedelta(days=1), Totals(qpu_s=1, jobs=1))

    by_account = {r.account: r.qpu_s for r in ledger.report(by="account")}
    assert by_account == {"": 1, "chem": 7, "phys": 15}
    by_user = {(r.account, r.user): r.qpu_s for r in ledger.report(by="user", account="phys")}
    assert by_user == {("phys", "alice"): 10, ("phys", "bob"): 5}
    by_day = {r.day: r.qpu_s for r in ledger.report(by="day")}
    assert by_day == {"2026-03-01": 22, "2026-03-02": 1}
    assert [r.qpu_s for r in ledger.report(by="class", job_class="prod")] == [1]
    # 10:30 rounds down to 10:00, 10:40 up to 11:00: the first hour only
    inside = ledger.report(since=T0 + timedelta(minutes=30), until=T0 + timedelta(minutes=40))
    assert [r.qpu_s for r in inside] == [15]
    assert [r.qpu_s for r in ledger.report(since=T0 + timedelta(hours=1))] == [8]
    assert total_of(ledger.report()).qpu_s == 23
    allocations = ledger.report(by="allocation", user="alice")
    assert [(r.allocation, r.account, r.qpu_s) for r in allocations] == [("77", "phys", 10)]


def test_old_buckets_are_dropped_but_the_per_account_totals_stay() -> None:
    ledger = Ledger(keep_s=86_400)
    ledger.charge(_job(), T0, Totals(qpu_s=4))
    ledger.charge(_job(), T0 + timedelta(days=2), Totals(qpu_s=6))
    assert total_of(ledger.report()).qpu_s == 6
    assert ledger.kept_from == T0 + timedelta(days=2) - timedelta(hours=0)
    assert ledger.accounts["phys"].qpu_s == 10


def test_a_ledger_survives_its_snapshot() -> None:
    ledger = Ledger()
    ledger.charge(_job(), T0, Totals(jobs=1, runs=2, shots=30, qpu_s=1.5, wait_s=3, started=1))
    again = Ledger.from_data(ledger.to_data())
    assert again.report(by="user") == ledger.report(by="user")
    assert again.accounts == ledger.accounts and again.allocations == ledger.allocations


# ---- the fold: the ledger equals the runs results list -------------------------------------------


def _listed_runs(log: list[Event], state: OwnerState) -> list[RunInterval]:
    """Every run the jobs' final results list (the events the fold used), and those the
    waiting and running jobs carry."""
    ignored = {e.event_id for e in state.ignored_events}
    runs: list[RunInterval] = []
    for event in log:
        used = event.topic in FINALS and event.event_id not in ignored
        if used and event.job_id and event.result is not None:
            runs += event.result.timings.runs
    for job in state.waiting.values():
        runs += job.runs
    for run in [state.running, *state.lanes.values()]:
        if run is not None:
            runs += run.job.runs
    return runs


def _check(log: list[Event], state: OwnerState) -> None:
    runs = _listed_runs(log, state)
    totals = total_of(state.ledger.report())
    qpu = [r for r in runs if r.lane is None]
    lanes = [r for r in runs if r.lane is not None]
    assert totals.qpu_s == pytest.approx(sum(r.seconds for r in qpu))
    assert totals.runs == len(qpu)
    assert totals.emulator_s == pytest.approx(sum(r.seconds for r in lanes))
    assert totals.lane_runs == len(lanes)
    assert totals.preemptions == sum(1 for r in qpu if r.outcome == "preempted")
    accounts = Totals()
    for per_account in state.ledger.accounts.values():
        accounts.add(per_account)
    assert accounts.qpu_s == pytest.approx(totals.qpu_s)
    refolded = OwnerState.for_half_life(3600)
    for event in log:
        refolded.apply(event)
    assert refolded.ledger.report(by="user") == state.ledger.report(by="user")


ACTIONS = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "submit",
                "submit_prod",
                "dispatch",
                "lane",
                "finish",
                "fail",
                "cancel",
                "lane_end",
                "failover",
                "snapshot",
            ]
        ),
        st.integers(0, 3),
        st.floats(0.0, 30.0, allow_nan=False),
    ),
    max_size=60,
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ACTIONS)
def test_ledger_totals_equal_the_runs_of_any_history(actions: list) -> None:
    h = Harness(LANE_POLICY, now=T0)
    users = ["alice", "bob", "carol", "dave"]
    for action, n, advance_s in actions:
        h.now += timedelta(seconds=advance_s)
        if action in ("submit", "submit_prod"):
            job_class = "production" if action == "submit_prod" else "development"
            slurm = SlurmContext(job_id=f"a{n}", account="grp") if n == 3 else None
            h.submit(users[n], job_class=job_class, shots=10 * (n + 1), slurm=slurm)
        elif action == "dispatch":
            h.feed(Dispatch())
        elif action == "lane":
            h.feed(LaneDispatch("emulator-1", "specs"))
        elif action in ("finish", "fail") and h.state.running is not None:
            run = h.state.running
            error = None
            if action == "fail":
                error = JobError(code=ErrorCode.BACKEND_ERROR, message="x", retryable=n % 2 == 0)
            h.feed(Finished(run.job.job_id, {"1": max(run.job.remaining_shots - n, 0)}, error))
        elif action == "lane_end" and h.state.lanes:
            run = next(iter(h.state.lanes.values()))
            h.feed(Finished(run.job.job_id, {"0": run.job.remaining_shots}))
        elif action == "cancel":
            ids = [*h.state.waiting, *(r.job.job_id for r in h.state.lanes.values())]
            if h.state.running is not None:
                ids.append(h.state.running.job.job_id)
            if ids:
                command = ControlCommand(
                    command=CommandName.CANCEL, job_id=ids[n % len(ids)], issued_at=h.now
                )
                h.feed(Command(command, "guest"))
                run = h.state.run_of(command.job_id)
                if run is not None:
                    h.feed(Finished(run.job.job_id, {"0": 1}, canceled=True))
        elif action == "failover":  # a new owner folds the log and takes the runs back
            h.state = OwnerState.for_half_life(LANE_POLICY.fair_share_half_life_s)
            for event in h.log:
                h.state.apply(event)
            h.activate()
        elif action == "snapshot":  # a new owner starts from a snapshot of the state
            h.state = from_data(to_data(h.state), LANE_POLICY.fair_share_half_life_s)
        if h.state.running is not None and h.state.running.preempting is not None:
            run = h.state.running
            h.feed(Finished(run.job.job_id, {"1": 1}, canceled=True))
    _check(h.log, h.state)


@pytest.mark.parametrize("seed", range(12))
def test_ledger_totals_equal_the_runs_in_the_simulated_worlds(seed: int) -> None:
    """Redeliveries, lost confirms, owner kills, stale owners: the seeded worlds of
    `tests.unit.simulation`, folded."""
    world = World(seed)
    world.run()
    state = world.fold()
    _check(world.log, state)
    assert total_of(state.ledger.report()).qpu_s > 0, "the world ran nothing on the QPU"
    assert WORLD_POLICY.lanes.emulators == 0


def test_waits_and_jobs_are_charged_to_the_verified_account() -> None:
    h = Harness(LANE_POLICY, now=T0)
    h.register("5", "alice", account="verified-acct")
    h.submit(
        "alice", job_class="production", shots=100, slurm=SlurmContext(job_id="5", account="lie")
    )
    h.now += timedelta(seconds=4)
    h.feed(Dispatch())
    h.now += timedelta(seconds=2)
    h.feed(Finished(h.state.running.job.job_id, {"0": 100}))  # type: ignore[union-attr]
    [row] = h.state.ledger.report(by="user")
    assert (row.account, row.user, row.jobs, row.runs, row.shots) == (
        "verified-acct",
        "alice",
        1,
        1,
        100,
    )
    assert row.qpu_s == pytest.approx(2.0) and row.wait_s == pytest.approx(4.0, abs=0.01)
    assert row.started == 1 and row.emulator_s == 0
