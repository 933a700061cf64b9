"""Emulator lanes in the core: starting a job on a free lane, and lane runs after a takeover.

A lane run is a `Run` in `OwnerState.lanes`, started by a `job.started` event that names its
lane and the digest of the device specs it runs under; it ends with the same final events as a
QPU run (its result names the lane, specs and epoch). Lanes never touch the QPU's state machine
and are not charged to fair share (emulator time is not QPU time). When an owner dies, its lane
runs go back to the backlog like its QPU run (`job.requeued`): no lane job is lost.
"""

from __future__ import annotations

from datetime import datetime

from consumers.core.inputs import LaneDispatch
from consumers.core.outcomes import Recheck, StartRun, Steps, job_event
from consumers.core.placement import best_for_lane
from consumers.core.state import OwnerState
from consumers.core.view import view_of
from schemas.envelope import Event
from schemas.events import JobBack, JobStarted, Topic
from schemas.policy import Policy

LANE_BACKEND = "emulator"


def lane_dispatch(state: OwnerState, policy: Policy, given: LaneDispatch, now: datetime) -> Steps:
    """Start the best lane-eligible job on `given.lane` if it is a free lane of the policy."""
    if given.lane in state.lanes or given.lane not in policy.lanes.names:
        return [], []
    job = best_for_lane(view_of(state, policy, now), state.index, now)
    if job is None:
        return [], []
    if job.validated_epoch < state.epoch and job.job_id != given.checked:
        return [], [Recheck(job, job.remaining_shots)]  # what runs on a lane is valid on the QPU
    started = job_event(
        Topic.JOB_STARTED,
        JobStarted(
            attempt=job.attempt,
            epoch=state.epoch,
            backend=LANE_BACKEND,
            shots=job.remaining_shots,
            lane=given.lane,
            specs=given.specs,
        ),
        job,
        f"on {given.lane}: the best waiting job that may run on an emulator",
    )
    return [started], [StartRun(job, job.remaining_shots, job.attempt, lane=given.lane)]


def requeue_lanes(state: OwnerState, owner_id: str) -> list[Event]:
    """The lane runs a dead owner left, back to the backlog with their counts."""
    events = []
    for lane, run in sorted(state.lanes.items()):
        counts = run.counts or run.job.prior_counts
        events.append(
            job_event(
                Topic.JOB_REQUEUED,
                JobBack(counts=counts, shots_done=sum(counts.values()), shots=run.job.shots),
                run.job,
                f"it was on {lane} when owner {state.owner_id} stopped; owner {owner_id} runs it again",
            )
        )
    return events
