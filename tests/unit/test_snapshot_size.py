"""An owner.snapshot of an owner that remembers as many jobs as it may still fits its limit."""

from __future__ import annotations

import uuid

from brokers.settings import load_settings
from consumers.core.run_fold import REMEMBERED_JOBS
from consumers.core.snapshot import to_data
from consumers.core.state import OwnerState
from consumers.owner.joblog import JobOffsets
from schemas.codec import encode
from schemas.enums import JobState
from schemas.events import Snapshot, Topic, make_event


def test_a_snapshot_remembering_the_most_jobs_fits_the_default_snapshot_limit() -> None:
    state = OwnerState.for_half_life(3600.0)
    offsets = JobOffsets()
    for n in range(REMEMBERED_JOBS):
        job_id = str(uuid.uuid4())
        state.owners[job_id] = f"user{n % 50}"
        state.finished[job_id] = JobState.DONE
        offsets.learn(job_id, "job.accepted", 10 * n)
        offsets.learn(job_id, "job.done", 10 * n + 7)
    event = make_event(
        Topic.OWNER_SNAPSHOT, Snapshot(state=to_data(state), jobs=offsets.to_data(state.owners))
    )
    settings = load_settings()
    size = len(encode(event, settings.owner.snapshot_max_bytes))  # raises MessageTooLarge if not
    assert size > settings.max_message_bytes  # why snapshots have a limit of their own
    assert settings.log_max_bytes >= settings.owner.snapshot_max_bytes
