"""Building a job request on the client: the sequence as JSON, the Slurm context, and the check
against the device the owner publishes (so a mistake is refused before it queues)."""

from __future__ import annotations

from typing import Any

import pika.exceptions

from brokers.connection import channel
from producers.errors import InvalidJob, NotDeclared
from producers.slurm import slurm_context
from schemas.codec import decode
from schemas.errors import DecodeError
from schemas.messages import DeviceSpecs, JobRequest

NOT_FOUND = 404
# The class of a job that names none, in the CLI and the SDK alike: development jobs are the safe
# default (production jobs may preempt them, never the other way round).
DEFAULT_JOB_CLASS = "development"


def read_device(url: str, device_queue: str, namespace: str) -> Any | None:
    """The Pulser device in the owner's device queue (peeked, left there), or None.

    Raises:
        NotDeclared: the namespace has no queues: no owner ever ran in it (nor `broker declare`).
    """
    from schemas.sequence import load_device  # Pulser: only when a device is asked for

    with channel(url, name="qsched-fetch-device") as ch:
        try:
            method, props, body = ch.basic_get(device_queue)
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code != NOT_FOUND:
                raise
            raise NotDeclared(
                f"namespace {namespace!r} has no queues on this broker: no QPU owner has run in "
                "it yet, so a job would have nowhere to wait",
                hint=f"start one in another terminal with QSCHED_NAMESPACE={namespace}: "
                "qsched owner",
            ) from None
        if method is None:
            return None
        ch.basic_nack(method.delivery_tag, requeue=True)
        try:
            return load_device(decode(body, props.type, DeviceSpecs).device)
        except (DecodeError, ValueError):
            return None


def job_request(sequence: Any, shots: int, device: Any | None, **fields: Any) -> JobRequest:
    """A `JobRequest` for `sequence` (a `pulser.Sequence` or abstract-repr JSON) with this
    process's Slurm context, checked against `device` when there is one.

    Raises:
        InvalidJob: the sequence or shot count does not fit `device`.
    """
    text = sequence if isinstance(sequence, str) else sequence.to_abstract_repr()
    job = JobRequest(shots=shots, sequence=text, slurm=slurm_context(), **fields)
    if device is not None:
        from schemas.sequence import validate_sequence

        problem = validate_sequence(text, device, shots, job.allow_device_switch)
        if problem is not None:
            raise InvalidJob(problem)
    return job
