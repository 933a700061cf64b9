"""Building a job request on the client: the sequence as JSON, the Slurm context, and the check
against the device the owner publishes (so a mistake is refused before it queues)."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from brokers.connection import NOT_FOUND, channel, translated
from brokers.errors import ChannelClosed
from brokers.stream import fetch_last_record
from producers.errors import InvalidJob, NotDeclared
from producers.slurm import slurm_context
from schemas.codec import decode
from schemas.enums import ErrorCode
from schemas.errors import DecodeError
from schemas.jobs import JobError, JobRequest
from schemas.messages import DeviceSpecs
from schemas.sequence import SequenceChecker, validate_shots

# The class of a job that names none, in the CLI and the SDK alike: development jobs are the safe
# default (production jobs may preempt them, never the other way round).
DEFAULT_JOB_CLASS = "development"
DEVICE_WAIT_S = 1.0  # how long an empty device specs stream is waited on (no owner published)


def read_device(
    url: str, device_queue: str, namespace: str, known: tuple[str, Any] | None = None
) -> tuple[str, Any] | None:
    """The Pulser device the owner last published on its device specs stream (read, never
    removed) with its JSON, or None. `known` (JSON, device) is returned as it is when the JSON did not change, so what was
    checked against that device object stays checked.

    Raises:
        NotDeclared: the namespace has no queues: no owner ever ran in it (nor `broker declare`).
    """
    from schemas.sequence import load_device  # Pulser: only when a device is asked for

    with channel(url, name="qsched-fetch-device") as ch:
        try:
            with translated(f"read {device_queue}"):
                record = fetch_last_record(ch.connection, device_queue, DEVICE_WAIT_S, 0.05)
        except ChannelClosed as exc:
            if exc.code != NOT_FOUND:
                raise
            raise NotDeclared(
                f"namespace {namespace!r} has no queues on this broker: no QPU owner has run in "
                "it yet, so a job would have nowhere to wait",
                hint=f"start one in another terminal with QSCHED_NAMESPACE={namespace}: "
                "qsched owner",
            ) from None
        if record is None:
            return None
        try:
            text = decode(record.body, record.properties.type, DeviceSpecs).device
            if known is not None and known[0] == text:
                return known
            return text, load_device(text)
        except (DecodeError, ValueError):
            return None


def sequence_text(sequence: Any) -> tuple[str, bool]:
    """A sequence's abstract-repr JSON, and whether its schema is worth checking here.

    A `pulser.Sequence` is written without Pulser's check of its own output (half the cost of
    writing it): Pulser built it, and the owner checks the schema of everything it takes in.
    Text from elsewhere is checked here, for an early error.
    """
    if isinstance(sequence, str):
        return sequence, True
    return str(sequence.to_abstract_repr(skip_validation=True)), False


def check_sequence(
    checker: SequenceChecker,
    text: str,
    device: Any,
    *,
    schema: bool,
    allow_device_switch: bool = False,
    parametrized: bool = False,
) -> None:
    """Check a sequence against `device` (once per distinct sequence: `checker` caches).

    Raises:
        InvalidJob: it does not fit.
    """
    problem = checker.check(
        text,
        device,
        allow_device_switch,
        parametrized=parametrized,
        schema=schema,
    )
    if problem is not None:
        raise InvalidJob(problem)


def invalid_argument(exc: ValidationError) -> InvalidJob:
    """The SDK's error for arguments the job model refuses, naming the first (pydantic's
    `ValidationError` stays inside: callers catch `QschedError` for every refusal)."""
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or None
    given = f" (got {first['input']!r})" if field and first["type"] != "missing" else ""
    return InvalidJob(
        JobError(
            code=ErrorCode.INVALID_SCHEMA,
            message=f"{field or 'job'}: {first['msg']}{given}",
            field=field,
        )
    )


def job_request(
    sequence: Any,
    shots: int,
    device: Any | None,
    checker: SequenceChecker | None = None,
    **fields: Any,
) -> JobRequest:
    """A `JobRequest` for `sequence` (a `pulser.Sequence` or abstract-repr JSON) with this
    process's Slurm context, checked against `device` when there is one.

    Raises:
        InvalidJob: an argument no job may have (shots < 1, a priority outside 0-9, a class
            name in capitals...), or the sequence or shot count does not fit `device`.
    """
    text, schema = sequence_text(sequence)
    try:
        job = JobRequest(shots=shots, sequence=text, slurm=slurm_context(), **fields)
    except ValidationError as exc:
        raise invalid_argument(exc) from None
    if device is not None:
        problem = validate_shots(shots, device)
        if problem is not None:
            raise InvalidJob(problem)
        check_sequence(
            checker or SequenceChecker(deep=False),
            text,
            device,
            schema=schema,
            allow_device_switch=job.allow_device_switch,
        )
    return job
