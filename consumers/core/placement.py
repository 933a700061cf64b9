"""Where a job may run: the QPU or an emulator lane (pure).

Each class says per mode where its jobs run (`JobClassPolicy.placement`: qpu, the default,
emulator, or either); a job may insist on the QPU (`require_qpu`). The QPU's side is in
`consumers.core.policy.class_hold`; this module is the lanes' side: what may start on a free
emulator lane, in the same policy order as the QPU (`best_indexed` with the lanes' holds). A lane
does not care about the QPU's state, the calibration window or the class's QPU modes: that is
what keeps development work flowing while the QPU is busy, calibrating or in maintenance.
"""

from __future__ import annotations

from datetime import datetime

from consumers.core.order import OrderIndex
from consumers.core.owner_view import Candidate, OwnerView
from consumers.core.policy import best_indexed
from consumers.core.reservations import lane_reservation_hold
from schemas.enums import Placement


def lane_class_hold(view: OwnerView, job_class: str) -> str | None:
    """Why no job of `job_class` may start on an emulator lane now, or None."""
    policy = view.policy.classes.get(job_class)
    if policy is None:
        return f"held: class {job_class!r} is not in the policy"
    if policy.placement_in(view.mode) is Placement.QPU:
        return f"held: {view.mode.value} mode runs {job_class} jobs on the QPU only"
    return None


def lane_job_hold(view: OwnerView, candidate: Candidate, now: datetime) -> str | None:
    """Why this job may not start on an emulator lane (it insists on the QPU, an admission
    plugin holds it, its allocation ended or it needs a later epoch), or None. The calibration
    window and the QPU's state do not concern lanes."""
    if candidate.require_qpu:
        return "held: the job insists on the QPU"
    reserved = lane_reservation_hold(view.reservations, candidate, now)
    if reserved is not None:
        return reserved
    if candidate.admission_hold is not None:
        return f"held: {candidate.admission_hold}"
    if candidate.allocation is not None and candidate.allocation in view.ended_allocations:
        return f"held: allocation {candidate.allocation} has ended"
    epoch = view.calibration.epoch
    if candidate.min_epoch is not None and candidate.min_epoch > epoch:
        return f"held: needs calibration epoch {candidate.min_epoch}, the QPU is at {epoch}"
    return None


def best_for_lane(view: OwnerView, index: OrderIndex, now: datetime) -> Candidate | None:
    """The best waiting job that may start on an emulator lane now, or None."""
    best, _ = best_indexed(view, index, now, (lane_class_hold, lane_job_hold))
    return best
