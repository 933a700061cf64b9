"""What the admission plugins' answers mean for a job that waits (pure).

The plugins are called by the shell (`consumers.plugins`), never here; their answers arrive as
the `hold` of an `Arrival` or as a `Readmitted` input for a held job asked again.
"""

from __future__ import annotations

from datetime import datetime

from consumers.core.inputs import Readmitted
from consumers.core.outcomes import Steps, end_waiting
from consumers.core.state import OwnerState
from schemas.enums import JobState
from schemas.events import AdmissionHold, Topic, make_event
from schemas.messages import Event


def admission_event(job_id: str, job_class: str, user: str, hold: str | None) -> Event:
    """The `job.admission` event: `hold` says why the job is held (None: the hold is lifted)."""
    return make_event(
        Topic.JOB_ADMISSION,
        AdmissionHold(hold=hold),
        job_id=job_id,
        job_class=job_class,
        user=user,
        reason=hold or "admission: the hold is lifted",
    )


def readmitted(state: OwnerState, given: Readmitted, now: datetime) -> Steps:
    """A held job's new admission answer: refused (it ends), let go, or held for another reason."""
    job = state.waiting.get(given.job_id)
    if job is None or job.admission_hold is None:
        return [], []
    if given.refusal is not None:
        return end_waiting(job, JobState.REJECTED, given.refusal, now)
    if given.hold == job.admission_hold:
        return [], []
    return [admission_event(job.job_id, job.job_class, job.user, given.hold)], []
