"""Wire contract of qsched: message models, enums, the msgpack codec, sequence checks, policy."""

from schemas.codec import CONTENT_TYPE, decode, decode_any, encode
from schemas.enums import CommandName, ErrorCode, JobState, Mode, QPUState
from schemas.errors import DecodeError, EncodeError, MessageTooLarge, PolicyError, SchemaError
from schemas.messages import (
    ControlCommand,
    ControlReply,
    DeviceSpecs,
    Event,
    JobError,
    JobPosition,
    JobProgress,
    JobRequest,
    JobResult,
    Message,
    QueueEntry,
    RunningJob,
    SlurmContext,
    StatusReport,
    Timings,
)
from schemas.policy import JobClassPolicy, Policy, load_policy, parse_policy

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
