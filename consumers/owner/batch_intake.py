"""Decode and check one `BatchRequest` delivery into the core's `BatchArrival`.

The envelope is checked as for a job (`consumers.owner.deliveries.check_envelope`); then the batch's
sequence once (cached by digest: `schemas.sequence.SequenceChecker`, free variables allowed) and
every job's shots and variables against the variables the sequence declares (a new batch) or
that the batch declared when it was created (an addition, from the owner's state). The first
problem found refuses the whole message (`consumers.core.batches`), naming the job it is about.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from consumers.core.batches import BatchArrival
from consumers.core.state import OwnerState
from consumers.owner.deliveries import Refusal, check_envelope, decode_error, trace_headers
from schemas.batches import BatchRequest
from schemas.codec import decode
from schemas.enums import ErrorCode
from schemas.errors import DecodeError
from schemas.jobs import JobError
from schemas.sequence import SequenceChecker, declared_variables, sequence_digest, validate_shots
from schemas.variables import validate_variables

if TYPE_CHECKING:
    from pulser.devices._device_datacls import BaseDevice


def is_batch(props: Any) -> bool:
    """Whether a delivery on a class queue says it is a `BatchRequest`."""
    return isinstance(props.type, str) and props.type.startswith(f"{BatchRequest.schema_name}/")


def read_batch(
    props: Any,
    body: bytes,
    routed_class: str,
    namespace: str,
    max_bytes: int,
    device: BaseDevice,
    checker: SequenceChecker,
    state: OwnerState,
) -> BatchArrival | Refusal:
    """One batch delivery as the core's input, or why it is no batch of its sender at all."""
    reply_to, problem = check_envelope(props, namespace)
    message_id = props.message_id if isinstance(props.message_id, str) else None
    if problem is not None:
        return Refusal(problem, props.user_id, reply_to, message_id)
    try:
        request = decode(body, props.type, BatchRequest, max_bytes)
    except DecodeError as exc:
        return Refusal(decode_error(exc), props.user_id, reply_to, message_id)
    arrival = BatchArrival(request, str(props.user_id), reply_to, trace_headers(props))
    if request.job_class != routed_class:
        problem = JobError(
            code=ErrorCode.INVALID_SCHEMA,
            message=f"job_class says {request.job_class!r} but the batch was routed to "
            f"{routed_class!r}",
            field="job_class",
        )
        return BatchArrival(request, arrival.user, reply_to, arrival.trace, problem)
    if request.sequence is None:
        batch = state.batches.get(request.batch_id)
        declared = batch.variables if batch is not None else {}
        problem = _jobs_problem(request, declared, device) if batch is not None else None
        return BatchArrival(request, arrival.user, reply_to, arrival.trace, problem)
    digest = sequence_digest(request.sequence)
    problem = checker.check(
        request.sequence,
        device,
        request.allow_device_switch,
        parametrized=True,
        digest=digest,
    )
    document = json.loads(request.sequence) if problem is None else {}
    declared = declared_variables(document) if problem is None else {}
    problem = problem or _jobs_problem(request, declared, device)
    return BatchArrival(
        request,
        arrival.user,
        reply_to,
        arrival.trace,
        problem,
        digest,
        declared,
        _atom_order(document),
        document.get("measurement") if isinstance(document.get("measurement"), str) else None,
    )


def _jobs_problem(
    request: BatchRequest, declared: dict[str, tuple[str, int]], device: BaseDevice
) -> JobError | None:
    """The first job whose shots or variables do not fit, named."""
    for job in request.jobs:
        problem = validate_shots(job.shots, device) or validate_variables(declared, job.variables)
        if problem is not None:
            message = f"job {job.job_id}: {problem.message}"
            return problem.model_copy(update={"message": message})
    return None


def _atom_order(document: dict[str, Any]) -> list[str]:
    """The register's atom ids in order (results' bitstrings follow it)."""
    return [
        str(atom.get("name", atom.get("qid")))
        for atom in document.get("register") or []
        if isinstance(atom, dict)
    ]
