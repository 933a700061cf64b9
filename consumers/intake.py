"""Checks a job must pass before it may wait for the QPU, and the refusal of those that fail.

`check_job` is the single list of reasons a decoded job is refused (class, ACL, shot limits,
sequence against the current device). `refuse` carries out a refusal: dead-letter the original
bytes with the reason, answer REJECTED when a reply queue is known, log `job.rejected`, ack.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pika.adapters.blocking_connection import BlockingChannel

from brokers.topology import Topology, dead_letter_properties
from consumers.core.policy import validate_admission
from consumers.publish import Publisher
from schemas.enums import ErrorCode, JobState
from schemas.errors import DecodeError
from schemas.messages import Event, JobError, JobRequest, JobResult, Timings
from schemas.policy import Policy
from schemas.sequence import validate_sequence, validate_shots

if TYPE_CHECKING:
    from pulser.devices._device_datacls import BaseDevice

SEQUENCE_CACHE_SIZE = 256


class SequenceChecker:
    """`validate_sequence` with a small cache: sweeps resubmit the same sequences often."""

    def __init__(self) -> None:
        self._cache: OrderedDict[tuple[str, int, bool], JobError | None] = OrderedDict()

    def check(
        self, sequence: str, device: BaseDevice, allow_device_switch: bool = False
    ) -> JobError | None:
        """The structured problem of `sequence` on `device`, or None."""
        digest = hashlib.sha256(sequence.encode()).hexdigest()
        key = (digest, id(device), allow_device_switch)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        problem = validate_sequence(sequence, device, allow_device_switch=allow_device_switch)
        self._cache[key] = problem
        if len(self._cache) > SEQUENCE_CACHE_SIZE:
            self._cache.popitem(last=False)
        return problem


def check_job(
    job: JobRequest,
    routed_class: str,
    user: str | None,
    policy: Policy,
    device: BaseDevice,
    sequences: SequenceChecker,
) -> JobError | None:
    """Every reason to refuse a decoded job, first one found."""
    if job.job_class != routed_class:
        return JobError(
            code=ErrorCode.INVALID_SCHEMA,
            message=f"job_class says {job.job_class!r} but the job was routed to {routed_class!r}",
            field="job_class",
        )
    return (
        validate_admission(policy, job.job_class, user, job.shots)
        or validate_shots(job.shots, device)
        or sequences.check(job.sequence, device, job.allow_device_switch)
    )


def canceled_by(job_id: str, by: str | None) -> JobError:
    """Why a job an operator canceled ended CANCELED."""
    return JobError(code=ErrorCode.CANCELED_BY_OPERATOR, message=f"job {job_id} canceled by {by}")


def allocation_ended(allocation: str) -> JobError:
    """Why a job of a Slurm allocation that ended was canceled (or never started)."""
    return JobError(code=ErrorCode.ALLOCATION_ENDED, message=f"Slurm allocation {allocation} ended")


def decode_error(exc: DecodeError) -> JobError:
    """The structured error sent back for a message that did not decode."""
    if exc.field is not None:
        code = ErrorCode.INVALID_SCHEMA
    elif "version" in exc.reason:
        code = ErrorCode.UNSUPPORTED_VERSION
    elif "exceeds" in exc.reason:
        code = ErrorCode.MESSAGE_TOO_LARGE
    else:
        code = ErrorCode.DECODE_ERROR
    return JobError(code=code, message=exc.reason, field=exc.field)


def refuse(
    channel: BlockingChannel,
    publisher: Publisher,
    topology: Topology,
    delivery_tag: int,
    properties: Any,
    body: bytes,
    error: JobError,
    origin: str,
    now: datetime,
    job: JobRequest | None = None,
) -> JobResult | None:
    """Dead-letter a message with its reason, answer its sender, log it, then ack it.

    Returns:
        The REJECTED result, when the job could be identified.
    """
    publisher.channel.basic_publish(
        topology.dead_letter_exchange,
        "",
        body,
        dead_letter_properties(properties, error.message, error.code.value, origin),
    )
    job_id = job.job_id if job is not None else properties.message_id
    result = None
    if job_id:
        result = JobResult(
            job_id=job_id,
            state=JobState.REJECTED,
            job_class=job.job_class if job is not None else origin.rsplit(".", 1)[-1],
            shots=job.shots if job is not None else 0,
            error=error,
            timings=Timings(queued_at=job.submitted_at if job is not None else now, ended_at=now),
        )
        publisher.reply(properties.reply_to, result, correlation_id=job_id)
        publisher.event(
            Event(
                topic="job.rejected",
                job_id=job_id,
                job_class=result.job_class,
                user=properties.user_id,
                reason=error.message,
                result=result,
            )
        )
    channel.basic_ack(delivery_tag)
    return result
