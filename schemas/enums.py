"""Enumerations shared by every layer. States and codes are never compared as free strings."""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    """Life cycle of a job as the submitter and the event log see it."""

    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    DONE = "DONE"
    ERROR = "ERROR"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    TIMED_OUT = "TIMED_OUT"

    @property
    def is_final(self) -> bool:
        """True for states a job never leaves."""
        return self not in (JobState.QUEUED, JobState.RUNNING)


class ErrorCode(StrEnum):
    """Why a job did not end DONE, or why a message was refused."""

    DECODE_ERROR = "DECODE_ERROR"
    INVALID_SCHEMA = "INVALID_SCHEMA"
    UNSUPPORTED_VERSION = "UNSUPPORTED_VERSION"
    MESSAGE_TOO_LARGE = "MESSAGE_TOO_LARGE"
    INVALID_SEQUENCE = "INVALID_SEQUENCE"
    TOO_MANY_SHOTS = "TOO_MANY_SHOTS"
    UNKNOWN_JOB_CLASS = "UNKNOWN_JOB_CLASS"
    NOT_AUTHORISED = "NOT_AUTHORISED"
    DUPLICATE_JOB_ID = "DUPLICATE_JOB_ID"
    INVALID_REPLY_TO = "INVALID_REPLY_TO"
    CANCELED_BY_USER = "CANCELED_BY_USER"
    CANCELED_BY_OPERATOR = "CANCELED_BY_OPERATOR"
    ALLOCATION_ENDED = "ALLOCATION_ENDED"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    MAX_RUNTIME_EXCEEDED = "MAX_RUNTIME_EXCEEDED"
    QUEUE_AGE_EXCEEDED = "QUEUE_AGE_EXCEEDED"
    BACKLOG_LIMIT = "BACKLOG_LIMIT"
    UNKNOWN_JOB = "UNKNOWN_JOB"
    PREEMPTED = "PREEMPTED"
    BACKEND_ERROR = "BACKEND_ERROR"
    BACKEND_UNAVAILABLE = "BACKEND_UNAVAILABLE"
    BACKEND_TIMEOUT = "BACKEND_TIMEOUT"
    INTERNAL = "INTERNAL"
    DEVICE_MISMATCH = "DEVICE_MISMATCH"
    STALE_COMMAND = "STALE_COMMAND"
    ADMISSION_REFUSED = "ADMISSION_REFUSED"
    NOT_WAITING = "NOT_WAITING"
    UNKNOWN_SESSION = "UNKNOWN_SESSION"
    SESSION_ENDED = "SESSION_ENDED"
    NOT_YOUR_SESSION = "NOT_YOUR_SESSION"
    ALLOCATION_REQUIRED = "ALLOCATION_REQUIRED"
    UNKNOWN_ALLOCATION = "UNKNOWN_ALLOCATION"
    NOT_YOUR_ALLOCATION = "NOT_YOUR_ALLOCATION"
    INVALID_VARIABLES = "INVALID_VARIABLES"
    UNKNOWN_BATCH = "UNKNOWN_BATCH"
    BATCH_CLOSED = "BATCH_CLOSED"
    BUDGET_SPENT = "BUDGET_SPENT"
    UNKNOWN_ACCOUNT = "UNKNOWN_ACCOUNT"
    UNKNOWN_USER = "UNKNOWN_USER"
    RESERVATION_CONFLICT = "RESERVATION_CONFLICT"
    UNKNOWN_RESERVATION = "UNKNOWN_RESERVATION"


class QPUState(StrEnum):
    """States of the QPU as the owner drives it (see consumers.core.machine)."""

    IDLE = "IDLE"
    RUNNING = "RUNNING"
    PREEMPTING = "PREEMPTING"
    CALIBRATING = "CALIBRATING"
    PAUSED = "PAUSED"
    DRAINING = "DRAINING"
    DOWN = "DOWN"


class Mode(StrEnum):
    """Operating mode of the site; which job classes run in which mode is policy."""

    PRODUCTION = "production"
    DEVELOPMENT = "development"
    MAINTENANCE = "maintenance"


class Placement(StrEnum):
    """Where a job class may run in a mode: the QPU, an emulator lane, or either."""

    QPU = "qpu"
    EMULATOR = "emulator"
    EITHER = "either"


class Ordering(StrEnum):
    """How jobs of one class are ordered among themselves (between classes, rank decides)."""

    FAIR_SHARE = "fair-share"  # session grace, site term, priority with aging, fair share, age
    FIFO = "fifo"  # first accepted, first served: nothing but the acceptance time


class CommandName(StrEnum):
    """Operators' control commands, routed as ``control.<name>``."""

    PAUSE = "pause"
    RESUME = "resume"
    DRAIN = "drain"
    MODE = "mode"
    CANCEL = "cancel"
    STATUS = "status"
    PREEMPT = "preempt"
    RELOAD_POLICY = "reload-policy"
    CALIBRATION_START = "calibration-start"
    CALIBRATION_COMPLETE = "calibration-complete"
    ALLOCATION_STARTED = "allocation-started"
    ALLOCATION_ENDED = "allocation-ended"
    QUEUE = "queue"
    RESULT = "result"
    HISTORY = "history"
    SHOW = "show"
    HOLD = "hold"
    RELEASE = "release"
    UPDATE = "update"
    REQUEUE = "requeue"
    DEAD_REQUEUE = "dead-requeue"
    JOBS = "jobs"
    SESSION_OPEN = "session-open"
    SESSION_CLOSE = "session-close"
    SESSION_CANCEL = "session-cancel"
    BATCH_SHOW = "batch-show"
    BATCH_CLOSE = "batch-close"
    BATCH_CANCEL = "batch-cancel"
    BATCH_RETRY = "batch-retry"
    BATCH_RESULTS = "batch-results"
    USAGE = "usage"
    BUDGET_SET = "budget-set"
    BUDGET_TOP_UP = "budget-top-up"
    BUDGET_SHOW = "budget-show"
    RESERVATION_CREATE = "reservation-create"
    RESERVATION_UPDATE = "reservation-update"
    RESERVATION_DELETE = "reservation-delete"
    RESERVATION_LIST = "reservation-list"
