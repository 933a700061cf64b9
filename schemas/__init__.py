"""Wire contract of qsched: message models, enums, the msgpack codec, sequence checks, policy."""

from schemas.codec import CONTENT_TYPE, decode, decode_any, encode
from schemas.control import ControlCommand, ControlReply
from schemas.enums import CommandName, ErrorCode, JobState, Mode, QPUState
from schemas.envelope import Event
from schemas.errors import DecodeError, EncodeError, MessageTooLarge, PolicyError, SchemaError
from schemas.jobs import (
    JobError,
    JobPosition,
    JobProgress,
    JobReceipt,
    JobRequest,
    JobResult,
    RunInterval,
    SlurmContext,
    Timings,
)
from schemas.messages import DeviceSpecs
from schemas.policy import JobClassPolicy, Policy, load_policy, parse_policy
from schemas.reports import QueueEntry, RunningJob, StatusReport
from schemas.wire import Message

__all__ = [
    "CONTENT_TYPE",
    "CommandName",
    "ControlCommand",
    "ControlReply",
    "DecodeError",
    "DeviceSpecs",
    "EncodeError",
    "ErrorCode",
    "Event",
    "JobClassPolicy",
    "JobError",
    "JobPosition",
    "JobProgress",
    "JobReceipt",
    "JobRequest",
    "JobResult",
    "JobState",
    "Message",
    "MessageTooLarge",
    "Mode",
    "Policy",
    "PolicyError",
    "QPUState",
    "QueueEntry",
    "RunInterval",
    "RunningJob",
    "SchemaError",
    "SlurmContext",
    "StatusReport",
    "Timings",
    "decode",
    "decode_any",
    "encode",
    "load_policy",
    "parse_policy",
]
