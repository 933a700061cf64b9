"""What a submitter may see of other users' jobs: where they stand, not who or what they are.

Operators see every job in full. Anyone else (like Slurm's ``squeue`` with ``PrivateData=jobs``
relaxed to positions) sees other users' jobs in `queue` and `status` with the job id, user,
account, priority and ordering factors replaced, so the order, the classes, the hold reasons and
the ETAs stay readable while nobody learns another user's job ids (which `cancel`/`history`
take) or whose work is ahead. Pure: the replies are rewritten before they are sent.
"""

from __future__ import annotations

from schemas.reports import QueueEntry, StatusReport

HIDDEN = "(hidden)"


def private_entry(entry: QueueEntry, user: str | None) -> QueueEntry:
    """`entry` as `user` may see it: theirs in full, another user's without its details."""
    if user is not None and entry.user == user:
        return entry
    return entry.model_copy(
        update={
            "job_id": HIDDEN,
            "user": HIDDEN,
            "account": None,
            "priority": 0,
            "factors": {},
            "session_id": None,
            "session_phase": None,
            "session_left_s": None,
        }
    )


def private_status(status: StatusReport, user: str | None, owners: dict[str, str]) -> StatusReport:
    """`status` as `user` may see it: another user's running or held jobs without their ids.

    Args:
        owners: submitter of each job id (the owner state's `owners`).
    """
    running = status.running
    if running is not None and running.user != user:
        running = running.model_copy(update={"job_id": HIDDEN, "user": None})
    held = {job: why for job, why in status.held_reasons.items() if owners.get(job) == user}
    sessions = [s for s in status.sessions if s.user == user]
    return status.model_copy(
        update={"running": running, "held_reasons": held, "sessions": sessions}
    )
