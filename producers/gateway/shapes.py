"""The JSON the qrmi client sends and parses (its ``PasqalLocal`` resource, Warden's API), and how
qsched's answers map onto it. Pure: no I/O.

What the ``qrmi`` wheel (0.26.4) actually reads, checked against it (tests/security/test_qrmi_flow.py):
a job's ``id`` is a JSON integer (Rust ``i32``: a string fails to parse), ``status`` one of
PENDING, RUNNING, DONE, CANCELED, ERROR, ``results`` a string (or null) handed to the user as is
(Pulser's QRMI connection reads ``{"counter": {bitstring: count}}`` from it), a session's ``id``
any string; any status outside 2xx is an error whose body the client shows. Warden also sends
``created_at``, which the client ignores; we send it too.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from schemas.enums import ErrorCode, JobState
from schemas.jobs import JobError, JobResult
from schemas.reports import QueueEntry

MAX_I32 = 2**31 - 1
ALLOCATION_ID = r"^[A-Za-z0-9][A-Za-z0-9._:+-]{0,127}$"
SESSION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")

WARDEN_STATUS = {
    JobState.QUEUED: "PENDING",
    JobState.RUNNING: "RUNNING",
    JobState.DONE: "DONE",
    JobState.CANCELED: "CANCELED",
    JobState.ERROR: "ERROR",
    JobState.REJECTED: "ERROR",
    JobState.TIMED_OUT: "ERROR",
}

# The owner's refusals as HTTP statuses (Warden: 403 for anything about a session, 404 for a job
# that is not the caller's, FastAPI's 422 for a body that does not fit).
HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.UNKNOWN_JOB: 404,
    ErrorCode.NOT_AUTHORISED: 403,
    ErrorCode.ALLOCATION_ENDED: 403,
    ErrorCode.INVALID_SEQUENCE: 422,
    ErrorCode.INVALID_SCHEMA: 422,
    ErrorCode.TOO_MANY_SHOTS: 422,
    ErrorCode.DEVICE_MISMATCH: 422,
    ErrorCode.UNKNOWN_JOB_CLASS: 422,
    ErrorCode.MESSAGE_TOO_LARGE: 413,
    ErrorCode.BACKLOG_LIMIT: 429,
    ErrorCode.ADMISSION_REFUSED: 403,
}
SESSION_CODES = ("SESSION", "ALLOCATION")  # codes naming these are the caller's: 403


class HttpError(Exception):
    """A request refused: the HTTP status and the JSON body ``{"detail", "code"}``."""

    def __init__(self, status: int, detail: str, code: str, uid: int | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.code = code
        self.uid = uid  # for the log line of a refused credential, when munged named its maker

    def body(self) -> dict[str, str]:
        """The JSON body (``detail`` as FastAPI writes it, plus a machine-readable code)."""
        return {"detail": self.detail, "code": self.code}


def from_job_error(error: JobError) -> HttpError:
    """The HTTP refusal of an owner's structured error."""
    status = HTTP_STATUS.get(error.code)
    if status is None:
        status = 403 if any(word in error.code.value for word in SESSION_CODES) else 409
    return HttpError(status, error.message, error.code.value)


class CreateSession(BaseModel):
    """``POST /sessions``: the user (a uid, as text) and the Slurm job the session belongs to."""

    model_config = ConfigDict(extra="ignore")

    user_id: str = Field(pattern=r"^[0-9]{1,10}$")
    slurm_job_id: str = Field(pattern=ALLOCATION_ID)


class CreateJob(BaseModel):
    """``POST /jobs``: a Pulser sequence (abstract-repr JSON) and its number of shots."""

    model_config = ConfigDict(extra="ignore")

    sequence: str = Field(min_length=2)
    shots: int = Field(gt=0, le=MAX_I32)


def parse_body(raw: bytes, model: type[BaseModel]) -> Any:
    """`raw` as `model`.

    Raises:
        HttpError: 422 naming the first field that does not fit (or the JSON error).
    """
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise HttpError(422, f"body is not JSON: {exc}", "INVALID_BODY") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise HttpError(422, f"{where}: {first['msg']}", "INVALID_BODY") from None


def job_number(text: str) -> int:
    """A job id from a path.

    Raises:
        HttpError: 422 when it is no positive 32-bit integer.
    """
    if not text.isdigit() or not 0 < int(text) <= MAX_I32:
        raise HttpError(422, f"job id {text[:40]!r} is not a positive integer", "INVALID_JOB_ID")
    return int(text)


def session_id(text: str | None) -> str:
    """The ``X-Warden-Session`` header.

    Raises:
        HttpError: 403 when it is missing or no session id (Warden's status for both).
    """
    if not text:
        raise HttpError(403, "Missing 'X-Warden-Session' header.", "SESSION_REQUIRED")
    if not SESSION_ID.match(text):
        raise HttpError(403, "Invalid session.", "UNKNOWN_SESSION")
    return text


def job_response(
    number: int,
    uid: int,
    state: JobState,
    result: JobResult | None = None,
    created_at: datetime | None = None,
) -> dict[str, Any]:
    """A job as Warden shows it; ``results`` is ``{"counter": counts}`` as text once it ran."""
    results = None
    if result is not None and (result.state is JobState.DONE or result.counts):
        results = json.dumps({"counter": result.counts})
    return {
        "id": number,
        "user_id": str(uid),
        "status": WARDEN_STATUS[state],
        "results": results,
        "created_at": created_at.isoformat() if created_at is not None else None,
    }


def entry_state(entry: QueueEntry | None) -> JobState:
    """The state of a job the owner answered with a queue entry (QUEUED when it gave none)."""
    return entry.state if entry is not None else JobState.QUEUED


def session_response(
    session: str, uid: int, created_at: datetime, revoked_at: datetime | None = None
) -> dict[str, Any]:
    """A session as Warden shows it (the qrmi client reads ``id``)."""
    return {
        "id": session,
        "user_id": str(uid),
        "created_at": created_at.isoformat(),
        "revoked_at": revoked_at.isoformat() if revoked_at is not None else None,
    }
