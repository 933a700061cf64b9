"""What each endpoint of the gateway does, without HTTP: a verified caller and parsed input in,
a JSON-ready answer out, or an `HttpError`.

Everything is asked of the owner (`OwnerLink`), so any gateway answers the same and a restart
loses nothing: a session is opened, closed and checked by the owner (``session-open``,
``session-close``; a job naming it is refused there when it is ended or another user's); a job
is a normal qsched job of the caller, accepted (and numbered) by the owner before the answer;
a job's state, result, cancel and logs are commands about the caller's own job by its number.

Who may open or close a session for someone else: root and the policy's ``epilog_users`` (the
Slurm plugin acquires and releases as SlurmUser); anyone else only for themselves.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

from producers.errors import NoOwnerAnswered, QschedError, QueueFull, UnknownJobClass
from producers.gateway.identity import Caller, UserOf, user_of
from producers.gateway.link import OwnerLink
from producers.gateway.shapes import (
    CreateJob,
    CreateSession,
    HttpError,
    entry_state,
    from_job_error,
    job_response,
    session_response,
)
from schemas.control import ControlReply
from schemas.enums import CommandName, JobState, Mode, QPUState
from schemas.jobs import JobRequest, JobResult
from schemas.wire import utc_now

log = logging.getLogger("producers.gateway")


class Gateway:
    """The endpoints' logic.

    Args:
        link: the owner, over AMQP.
        job_class: the class of the jobs QRMI tasks become.
        slurm_users: users who may open and close sessions for others (besides root).
        users: uid -> unix user name.
    """

    def __init__(
        self,
        link: OwnerLink,
        job_class: str,
        slurm_users: tuple[str, ...] = (),
        users: UserOf = user_of,
    ) -> None:
        self.link = link
        self.job_class = job_class
        self.slurm_users = slurm_users
        self.users = users

    def _ask(self, user: str | None, name: CommandName, **fields: Any) -> ControlReply:
        try:
            reply = self.link.command(user, name, **fields)
        except NoOwnerAnswered as exc:
            raise HttpError(503, str(exc), "NO_OWNER") from None
        except QschedError as exc:  # the client's and the broker edge's
            raise HttpError(503, str(exc), "BROKER") from None
        if not reply.ok:
            if reply.error is None:
                raise HttpError(409, reply.message, "REFUSED")
            raise from_job_error(reply.error)
        return reply

    def _may_act_for_others(self, caller: Caller) -> bool:
        return caller.uid == 0 or caller.user in self.slurm_users

    # ---- /accessible, /qpu/specs ---------------------------------------------------------------

    def accessible(self) -> dict[str, Any]:
        """Whether the QPU takes jobs now (an owner answers, not in maintenance, not DOWN)."""
        try:
            reply = self._ask(None, CommandName.STATUS)
        except HttpError as exc:
            return {"is_accessible": False, "message": exc.detail}
        status = reply.status
        if status is None:
            return {"is_accessible": False, "message": "the owner sent no status"}
        if status.mode is Mode.MAINTENANCE:
            return {"is_accessible": False, "message": status.mode_message or "maintenance"}
        if status.qpu_state is QPUState.DOWN:
            return {"is_accessible": False, "message": "the QPU is DOWN"}
        return {"is_accessible": True, "message": f"QPU {status.qpu_state.value}"}

    def specs(self, caller: Caller) -> dict[str, Any]:
        """The owner's current device (Pulser abstract repr, as text)."""
        device = self.link.device_json()
        if device is None:
            raise HttpError(503, "the owner has published no device yet", "NO_DEVICE")
        return {"specs": device}

    # ---- sessions ------------------------------------------------------------------------------

    def open_session(self, caller: Caller, body: CreateSession) -> dict[str, Any]:
        """A session of user `body.user_id` in Slurm allocation `body.slurm_job_id`."""
        uid = int(body.user_id)
        if uid != caller.uid and not self._may_act_for_others(caller):
            raise HttpError(
                403, f"uid {caller.uid} may not open a session for uid {uid}", "NOT_AUTHORISED"
            )
        user = self.users(uid)
        if user is None:
            raise HttpError(422, f"user_id {uid} has no user on this host", "UNKNOWN_UID")
        session = str(uuid.uuid4())
        self._ask(
            user,
            CommandName.SESSION_OPEN,
            session_id=session,
            allocation=body.slurm_job_id,
            job_class=self.job_class,
        )
        log.info("session %s opened for %s (uid %d) by uid %d", session, user, uid, caller.uid)
        return session_response(session, uid, utc_now())

    def close_session(self, caller: Caller, session: str) -> dict[str, Any]:
        """Close a session: no new jobs; its queued and running jobs finish."""
        reply = self._ask(caller.user, CommandName.SESSION_CLOSE, session_id=session)
        log.info("session %s closed by %s: %s", session, caller.user, reply.message)
        return session_response(session, caller.uid, utc_now(), revoked_at=utc_now())

    # ---- jobs ----------------------------------------------------------------------------------

    def create_job(self, caller: Caller, session: str, body: CreateJob) -> dict[str, Any]:
        """A job of the caller in `session`; answered once the owner accepted it."""
        try:
            job = JobRequest(
                job_class=self.job_class,
                shots=body.shots,
                sequence=body.sequence,
                session_id=session,
                receipt=True,
                opens_session=False,
            )
        except ValueError as exc:
            raise HttpError(422, f"sequence: {_first_error(exc)}", "INVALID_BODY") from None
        try:
            answer = self.link.submit(caller.user, job)
        except NoOwnerAnswered as exc:
            raise HttpError(503, str(exc), "NO_OWNER") from None
        except QueueFull as exc:
            raise HttpError(429, str(exc), "QUEUE_FULL") from None
        except UnknownJobClass as exc:
            raise HttpError(503, str(exc), "UNKNOWN_JOB_CLASS") from None
        except QschedError as exc:  # the client's and the broker edge's
            raise HttpError(503, str(exc), "BROKER") from None
        if isinstance(answer, JobResult):
            assert answer.error is not None  # a REJECTED result carries its error
            raise from_job_error(answer.error)
        return job_response(answer, caller.uid, JobState.QUEUED, created_at=job.submitted_at)

    def job(self, caller: Caller, number: int) -> dict[str, Any]:
        """One of the caller's jobs: its state and, once it ran, its counts."""
        pushed = self.link.finished(caller.user, number)  # it ended: the owner said so already
        if pushed is not None:
            return job_response(number, caller.uid, pushed.state, pushed)
        reply = self._ask(caller.user, CommandName.RESULT, number=number)
        if reply.result is not None:
            return job_response(number, caller.uid, reply.result.state, reply.result)
        entry = reply.queue[0] if reply.queue else None
        created: datetime | None = entry.submitted_at if entry is not None else None
        return job_response(number, caller.uid, entry_state(entry), created_at=created)

    def cancel_job(self, caller: Caller, number: int) -> dict[str, Any]:
        """Cancel one of the caller's jobs; its state after the cancel."""
        self._ask(caller.user, CommandName.CANCEL, number=number)
        return self.job(caller, number)

    def jobs(self, caller: Caller) -> list[dict[str, Any]]:
        """The caller's jobs, newest first (states only: a job's counts are at /jobs/{id})."""
        reply = self._ask(caller.user, CommandName.JOBS)
        return [
            job_response(j.number, caller.uid, j.state, created_at=j.submitted_at)
            for j in reply.jobs or []
            if j.number is not None
        ]

    def logs(self, caller: Caller, number: int) -> dict[str, Any]:
        """One of the caller's jobs as its history, one event a line."""
        reply = self._ask(caller.user, CommandName.HISTORY, number=number)
        lines = [
            f"{e.at.isoformat()} {e.topic}{': ' + e.reason if e.reason else ''}"
            for e in reply.history or []
        ]
        return {"logs": "\n".join(lines)}


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        found = errors()
        if found:
            return str(found[0].get("msg", exc))
    return str(exc)
