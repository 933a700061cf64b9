"""Batches from the client: one sequence checked once, many jobs that carry runs and variables.

::

    batch = client.submit_batch(parametrized_seq, [{"runs": 100, "variables": {"amp": 1.0}}, ...])
    batch.add([{"runs": 100, "variables": {"amp": 2.0}}])      # an open batch only
    batch.close()                                              # Pulser's declare_complete
    for result in batch.results(): ...                         # per job, from the owner
    again = client.batch(batch.batch_id)                       # from any process, any time

`submit_batch` checks the sequence against the owner's device once (free variables allowed)
and every job's shots and variables against the variables the sequence declares, so a mistake
is refused before anything is sent (`InvalidJob`, one line naming the bad variable); the owner
checks again and refuses a bad batch whole. The whole batch is one message: one confirm.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import ValidationError

from producers.confirms import Outgoing
from producers.errors import CommandRefused, InvalidJob
from producers.handle import JobHandle
from producers.jobs import check_sequence, invalid_argument, sequence_text
from producers.port import ClientPort
from producers.slurm import slurm_context
from schemas.batches import BATCH_AMQP_PRIORITY, BatchDetail, BatchJob, BatchRequest
from schemas.control import ControlReply
from schemas.enums import CommandName
from schemas.jobs import JobError, JobResult
from schemas.sequence import SequenceChecker, declared_variables, read_document, validate_shots
from schemas.variables import validate_variables

JobParams = Mapping[str, Any] | BatchJob  # Pulser's {"runs": n, "variables": {...}} or ours


class BatchClient(ClientPort, Protocol):
    """What batches use of their client besides `ClientPort`: the local checks and job handles."""

    validate_locally: bool
    checker: SequenceChecker

    def fetch_device(self) -> Any | None:
        """The Pulser device the owner validates against now (None: none published)."""
        ...

    def follow(self, job_id: str, job_class: str, shots: int) -> JobHandle:
        """The client's handle for `job_id` (made and registered on first use)."""
        ...


def batch_jobs(params: Iterable[JobParams]) -> list[BatchJob]:
    """Pulser's ``job_params`` (``runs``, ``variables``) as batch jobs.

    Raises:
        ValueError: an entry without ``runs``.
        InvalidJob: runs or variables no job may have (runs < 1...).
    """
    jobs = []
    for entry in params:
        if isinstance(entry, BatchJob):
            jobs.append(entry)
            continue
        runs = entry.get("runs", entry.get("shots"))
        if runs is None:
            raise ValueError("every job needs 'runs' (shots) to run on qsched")
        try:
            jobs.append(BatchJob(shots=int(runs), variables=dict(entry.get("variables") or {})))
        except ValidationError as exc:
            raise invalid_argument(exc) from None
    return jobs


@dataclass(eq=False)
class BatchHandle:
    """A batch, as its submitter sees it: its jobs' handles, and the owner's word on it."""

    batch_id: str
    job_class: str
    variables: dict[str, tuple[str, int]]
    client: BatchClient = field(repr=False)
    handles: list[JobHandle] = field(default_factory=list)
    priority: int = 0
    atom_order: list[str] = field(default_factory=list)
    basis: str | None = None

    @property
    def job_ids(self) -> list[str]:
        """The ids of the jobs this handle knows, in the order they were added."""
        return [h.job_id for h in self.handles]

    def add(self, params: Iterable[JobParams]) -> list[JobHandle]:
        """Add jobs to this open batch; returns once the broker confirmed them.

        Raises:
            InvalidJob: a job's shots or variables do not fit (nothing is sent).
        """
        jobs = batch_jobs(params)
        if self.client.validate_locally:
            check_jobs(jobs, self.variables, self.client.fetch_device())
        try:
            request = BatchRequest(
                batch_id=self.batch_id, job_class=self.job_class, priority=self.priority, jobs=jobs
            )
        except ValidationError as exc:
            raise invalid_argument(exc) from None
        new = publish_batch(self.client, request)
        self.handles += new
        return new

    def close(self, timeout: float = 10.0) -> ControlReply:
        """Declare the batch complete: no more jobs (queued ones still run)."""
        return self._command(CommandName.BATCH_CLOSE, timeout)

    def cancel(self, timeout: float = 10.0) -> ControlReply:
        """Cancel the batch: closed, its queued jobs canceled, its running job stopped."""
        return self._command(CommandName.BATCH_CANCEL, timeout)

    def retry(self, timeout: float = 10.0) -> ControlReply:
        """Run the batch's jobs that ended ERROR again (same ids, runs and variables)."""
        return self._command(CommandName.BATCH_RETRY, timeout)

    def status(self, timeout: float = 10.0) -> BatchDetail:
        """The owner's view: open or closed, each job's state, counts by state."""
        reply = self._command(CommandName.BATCH_SHOW, timeout)
        assert reply.batch is not None
        return reply.batch

    def results(self, timeout: float = 30.0) -> list[JobResult]:
        """The final results of the batch's ended jobs, from the owner (any process)."""
        reply = self._command(CommandName.BATCH_RESULTS, timeout)
        for result in reply.results or []:
            self.client.results.setdefault(result.job_id, result)
        return list(reply.results or [])

    def wait(self, timeout_s: float | None = None) -> list[JobResult]:
        """Wait for every job this handle submitted; their results in order.

        Raises:
            ResultTimeout: some result did not come within `timeout_s` (overall).
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        results = []
        for handle in self.handles:
            left = None if deadline is None else max(deadline - time.monotonic(), 0.001)
            results.append(handle.result(left))
        return results

    def _command(self, command: CommandName, timeout: float) -> ControlReply:
        reply = self.client.control(command, batch_id=self.batch_id, timeout=timeout)
        if not reply.ok:
            raise CommandRefused(f"{command.value} {self.batch_id}: {reply.message}", reply.error)
        return reply


def check_jobs(jobs: list[BatchJob], declared: dict[str, tuple[str, int]], device: Any) -> None:
    """Check each job's variables (and shots, when the device is known).

    Raises:
        InvalidJob: the first job that does not fit, named.
    """
    for job in jobs:
        problem = validate_variables(declared, job.variables)
        if problem is None and device is not None:
            problem = validate_shots(job.shots, device)
        if problem is not None:
            message = f"job {job.job_id}: {problem.message}"
            raise InvalidJob(problem.model_copy(update={"message": message}))


def publish_batch(client: BatchClient, request: BatchRequest) -> list[JobHandle]:
    """Publish one batch message; a handle per job once the broker confirmed it."""
    handles = [client.follow(job.job_id, request.job_class, job.shots) for job in request.jobs]
    outgoing = Outgoing(
        request,
        client.topology.jobs_exchange,
        request.job_class,
        f"{request.batch_id}:{request.jobs[0].job_id if request.jobs else 'create'}",
        BATCH_AMQP_PRIORITY,
    )
    confirmed_at = client.session.publish([outgoing], 30.0)
    for handle in handles:
        handle.queued_at = confirmed_at.get(outgoing.message_id)
    return handles


def submit_batch(
    client: BatchClient,
    sequence: Any,
    params: Iterable[JobParams],
    job_class: str = "production",
    priority: int = 0,
    *,
    open: bool = False,
    batch_id: str | None = None,
    **fields: Any,
) -> BatchHandle:
    """Create a batch (see `QPUClient.submit_batch`)."""
    text, schema = sequence_text(sequence)
    jobs = batch_jobs(params)
    document = read_document(text, schema=False)  # the schema: `check_sequence` or the owner
    if isinstance(document, JobError):
        raise InvalidJob(document)
    declared = declared_variables(document)
    device = client.fetch_device() if client.validate_locally else None
    if device is not None:
        check_sequence(
            client.checker,
            text,
            device,
            schema=schema,
            allow_device_switch=bool(fields.get("allow_device_switch")),
            parametrized=True,
        )
    if client.validate_locally:
        check_jobs(jobs, declared, device)
    extra: dict[str, Any] = {"batch_id": batch_id} if batch_id else {}
    try:
        request = BatchRequest(
            job_class=job_class,
            priority=priority,
            sequence=text,
            jobs=jobs,
            open=open,
            slurm=slurm_context(),
            **extra,
            **fields,
        )
    except ValidationError as exc:
        raise invalid_argument(exc) from None
    handle = BatchHandle(
        request.batch_id,
        job_class,
        declared,
        client,
        priority=priority,
        atom_order=[str(a.get("name", a.get("qid"))) for a in document.get("register") or []],
        basis=document.get("measurement"),
    )
    client.follow(request.batch_id, job_class, 0)  # a refusal of the batch itself comes here
    handle.handles = publish_batch(client, request)
    return handle


def find_batch(client: BatchClient, batch_id: str, timeout: float = 10.0) -> BatchHandle:
    """A handle on a batch made anywhere (this process or another), from the owner's word.

    Raises:
        CommandRefused: the owner knows no such batch, or it is another user's.
    """
    reply = client.control(CommandName.BATCH_SHOW, batch_id=batch_id, timeout=timeout)
    if not reply.ok or reply.batch is None:
        raise CommandRefused(f"batch {batch_id}: {reply.message}", reply.error)
    found = reply.batch
    handle = BatchHandle(
        found.batch_id,
        found.job_class,
        dict(found.variables),
        client,
        atom_order=list(found.atom_order),
        basis=found.basis,
    )
    handle.handles = [client.follow(job_id, found.job_class, 0) for job_id in found.job_ids]
    return handle
