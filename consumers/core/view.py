"""Read-only views of the owner's state: what the policy sees, the queue in order, the status.

All pure: they take the state, the policy and `now`, and build plain values. `queue_entries` walks
the backlog in the reference order lazily (`consumers.core.ordered`: the first rows cost
O(rows x log cohorts)); it serves `qsched queue`, a job's position and ETA, never the dispatch
path.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime, timedelta
from itertools import islice

from consumers.core.budget_rules import statuses
from consumers.core.order import Waiting
from consumers.core.order_key import OrderKey
from consumers.core.ordered import in_order
from consumers.core.owner_view import Calibration, OwnerView
from consumers.core.policy import class_hold, decide_indexed, estimated_duration_s, hold_reason
from consumers.core.reservations import ahead, in_force, maintenance_at
from consumers.core.session_view import SessionPhases, open_sessions
from consumers.core.state import OwnerState
from consumers.core.state_data import GraceBounds, Run
from schemas.enums import JobState, Mode, QPUState
from schemas.policy import Policy
from schemas.reports import QueueEntry, RunningJob, StatusReport

ETA_STATES = (QPUState.IDLE, QPUState.RUNNING, QPUState.PREEMPTING)
HELD_SHOWN = 20  # held jobs `status` names
SKIPS_LOOKED_AT = 100  # jobs next in line `status` checks for skips (allocation end, window)
# what a job in line waits for when no ETA can be given: the QPU's state, in a word
NO_ETA = {
    QPUState.PAUSED: "paused",
    QPUState.CALIBRATING: "calibrating",
    QPUState.DRAINING: "draining",
    QPUState.DOWN: "down",
}


def calibration_of(state: OwnerState, policy: Policy) -> Calibration:
    """The epoch and until when it is valid (no window before the first calibration)."""
    valid_s = policy.calibration_valid_s
    if valid_s is None or state.calibrated_at is None:
        return Calibration(state.epoch, None)
    return Calibration(state.epoch, state.calibrated_at + timedelta(seconds=valid_s))


def view_of(state: OwnerState, policy: Policy, now: datetime) -> OwnerView:
    """What the policy sees of the owner at `now`."""
    running = state.running
    reservations = tuple(ahead(in_force(state, policy), now))
    mode = state.effective_mode(policy.mode)
    if maintenance_at(reservations, now) is not None:
        mode = Mode.MAINTENANCE
    return OwnerView(
        state.qpu,
        mode,
        policy,
        running.job if running is not None else None,
        calibration=calibration_of(state, policy),
        usage=state.user_usage.snapshot(now),
        account_usage=state.account_usage.snapshot(now),
        class_usage=state.class_usage.snapshot(now),
        sessions_in_grace=state.sessions_in_grace(
            now, policy.session_grace_s, GraceBounds.of(policy)
        ),
        ended_allocations=frozenset(state.ended_allocations),
        budgets=statuses(state, policy, now),
        reservations=reservations,
    )


def running_left_s(state: OwnerState, policy: Policy, now: datetime) -> float:
    """Estimated seconds until the running job ends (0 when the QPU is free), at the rate the
    recent runs measured (`consumers.core.shotrate`)."""
    run = state.running
    if run is None:
        return 0.0
    elapsed_s = (now - run.started_at).total_seconds()
    measured = state.shot_rate.costs(policy.job_overhead_s)
    expected_s = estimated_duration_s(policy, run.job.remaining_shots, measured)
    return max(expected_s - elapsed_s, 0.0)


def queue_entries(
    state: OwnerState,
    policy: Policy,
    now: datetime,
    *,
    user: str | None = None,
    job_class: str | None = None,
    job_id: str | None = None,
    job_ids: Collection[str] | None = None,
    limit: int | None = None,
) -> list[QueueEntry]:
    """The waiting jobs in policy order with position and ETA, then the held ones.

    The backlog is walked in order lazily (`consumers.core.ordered`), and a row is built only
    for a job that is kept, so the first rows cost little at any depth.

    Args:
        user, job_class, job_id, job_ids: keep only these (positions still count every job).
        limit: at most this many rows (the walk stops once that many startable rows are found).
    """
    view = view_of(state, policy, now)
    eta_known = state.qpu in ETA_STATES
    no_eta = None if eta_known else NO_ETA.get(state.qpu, state.qpu.value.lower())
    ahead_s = running_left_s(state, policy, now)
    measured = state.shot_rate.costs(policy.job_overhead_s)  # ETAs: the QPU's measured rate
    startable: list[QueueEntry] = []
    held: list[QueueEntry] = []
    phases = SessionPhases(state, policy, now)
    wanted = limit if limit is not None else len(state.waiting)
    still = len(job_ids) if job_ids is not None else (1 if job_id is not None else None)
    position = 0
    for job, key in in_order(view, state.index, now):
        if len(startable) >= wanted or still == 0:
            break
        reason = hold_reason(view, job, now)
        keep = (
            (user is None or job.user == user)
            and (job_class is None or job.job_class == job_class)
            and (job_id is None or job.job_id == job_id)
            and (job_ids is None or job.job_id in job_ids)
        )
        if keep and still is not None:
            still -= 1
        if reason is None:
            position += 1
            if keep:
                eta_s = ahead_s if eta_known else None
                startable.append(_entry(job, key, position, eta_s, phases, no_eta=no_eta))
            ahead_s += estimated_duration_s(policy, job.remaining_shots, measured)
        elif keep and len(held) < wanted:
            held.append(_entry(job, key, None, None, phases, reason))
    return (startable + held)[:wanted]


def _entry(
    job: Waiting,
    key: OrderKey | None,
    position: int | None,
    eta_s: float | None,
    phases: SessionPhases | None,
    held: str | None = None,
    state: JobState = JobState.QUEUED,
    no_eta: str | None = None,
) -> QueueEntry:
    """One job as `qsched queue` shows it: its order key's factors (`key` None: none, e.g. the
    running job) and where its session stands (`phases`)."""
    session = phases.summary(job.session_id) if phases and job.session_id else None
    return QueueEntry(
        job_id=job.job_id,
        job_class=job.job_class,
        user=job.user,
        account=job.account,
        priority=job.priority,
        shots=job.shots,
        submitted_at=job.submitted_at,
        position=position,
        eta_s=round(eta_s, 3) if eta_s is not None else None,
        eta_unknown=no_eta,
        held=held,
        state=state,
        factors=key.factors() if key is not None else {},
        session_id=job.session_id,
        session_phase=session.phase if session is not None else None,
        session_left_s=session.left_s if session is not None else None,
    )


def running_entry(
    state: OwnerState, now: datetime, phases: SessionPhases | None = None
) -> QueueEntry | None:
    """The running job as a queue entry (position 0, state RUNNING)."""
    run = state.running
    if run is None:
        return None
    return run_entry(run, now, phases)


def run_entry(run: Run, now: datetime, phases: SessionPhases | None = None) -> QueueEntry:
    """A run, on the QPU or an emulator lane, as a queue entry (position 0, state RUNNING),
    with its session's phase when `phases` is given."""
    return _entry(run.job, None, 0, 0.0, phases, state=JobState.RUNNING)


def status_of(
    state: OwnerState, policy: Policy, now: datetime, owner_id: str, backend: str
) -> StatusReport:
    """What `qsched status` shows."""
    view = view_of(state, policy, now)
    running = _running_job(state.running) if state.running is not None else None
    held_reasons = held_sample(state, view, now)
    depth = {name: state.index.per_class.get(name, 0) for name in policy.class_names}
    decision = decide_indexed(view, state.index, now).reason
    if decision == "no jobs" and held_reasons:
        decision = next(iter(held_reasons.values()))
    lanes = {
        name: _running_job(state.lanes[name]) if name in state.lanes else None
        for name in policy.lanes.names
    }
    return StatusReport(
        owner_id=owner_id,
        qpu_state=state.qpu,
        mode=view.mode,
        mode_message=state.mode_message if state.mode is not None else policy.mode_message,
        running=running,
        queue_depth=depth,
        held={},
        epoch=state.epoch,
        backend=backend,
        last_decision=decision,
        held_reasons=held_reasons,
        calibration_valid_until=view.calibration.valid_until,
        reservations=list(view.reservations),
        calibration_pending=state.calibration_pending,
        waiting_by_account=waiting_by_account(state),
        lanes=lanes,
        sessions=open_sessions(state, policy, now),
    )


def held_sample(state: OwnerState, view: OwnerView, now: datetime) -> dict[str, str]:
    """Up to `HELD_SHOWN` waiting jobs that may not start, with why, for `status`, without
    looking at every job: the jobs of held classes, the jobs with hold facts of their own (the
    index's `flagged`), and, of the next `SKIPS_LOOKED_AT` jobs in line, those skipped for their
    allocation's end or the calibration window (`queue` and `show` give any job's reason)."""
    found: dict[str, str] = {}

    def look(jobs: Iterable[Waiting]) -> bool:
        for job in jobs:
            reason = hold_reason(view, job, now)
            if reason is not None:
                found[job.job_id] = reason
                if len(found) >= HELD_SHOWN:
                    return True
        return False

    index = state.index
    for job_class, users in index.cohorts.items():
        if class_hold(view, job_class) is not None:
            cohorts = (cohort for levels in users.values() for cohort in levels.values())
            if look(entry[2] for cohort in cohorts for entry in cohort):
                return found
    if look(index.jobs[job_id] for job_id in index.flagged):
        return found
    look(job for job, _ in islice(in_order(view, index, now), SKIPS_LOOKED_AT))
    return found


def _running_job(run: Run) -> RunningJob:
    job = run.job
    return RunningJob(
        job_id=job.job_id,
        job_class=job.job_class,
        shots=job.shots,
        started_at=run.started_at,
        user=job.user,
        shots_done=sum(run.counts.values()),
        epoch=run.epoch,
    )


def waiting_by_account(state: OwnerState) -> dict[str, int]:
    """Waiting jobs per Slurm account ("" for none), from the index's cohorts: O(cohorts)."""
    counts: dict[str, int] = {}
    for users in state.index.cohorts.values():
        for user_key, levels in users.items():
            account = user_key.rsplit("/", 1)[0]
            counts[account] = counts.get(account, 0) + sum(
                len(cohort) for cohort in levels.values()
            )
    return counts
