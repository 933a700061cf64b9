"""`QPUClient`: the public client. Submit jobs, receive results and progress, send commands.

A thin shell around kombu (py-amqp underneath). Its parts each live in one place:
`producers.session` holds the connection, the reply consumer and the confirmed publisher (and
reconnects), `producers.connect` opens the connection (URLs in turn, errors translated),
`producers.confirms` publishes with publisher confirms (a window of jobs in flight, frames by
`producers.frames`; a returned job raises `UnknownJobClass`, a nacked one `QueueFull`),
`producers.sending` stamps, traces and publishes built jobs, `producers.commands` sends an
operator's command and waits for its reply (`control`, `queue`; the session commands on top in
`producers.sessions`), `producers.replies` holds what arrives on the client's reply queue,
`producers.handle` is the `JobHandle` a submit returns, `producers.batches` and
`producers.results` hold batches and results, `producers.jobs` builds a job and
`producers.slurm` reads the Slurm context stamped on each job. The handle, batch and results
code know the client only as a `producers.port.ClientPort` (it passes itself), so none of
them imports this module.

Results and progress arrive on the client's own reply queue (``<ns>.reply.<user>.<client-id>``),
which outlives a short disconnect (``x-expires``); `reconnect` picks it up again. The client is
not thread-safe: use one per thread or per MPI rank (or `producers.mpi` for one publisher per node).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from brokers.settings import Settings, load_settings
from brokers.stream import Offset
from brokers.topology import Topology, build_topology
from brokers.tracing import configure_tracing
from producers.batches import BatchHandle, JobParams, find_batch, submit_batch
from producers.budgets import BudgetCommands
from producers.confirms import CONFIRM_WINDOW, Outgoing
from producers.handle import JobHandle, PositionCallback, ProgressCallback
from producers.jobs import DEFAULT_JOB_CLASS, job_request, read_device
from producers.replies import ReplyInbox
from producers.results import find_result, wait_for_result
from producers.sending import send_jobs
from producers.session import ClientSession
from producers.sessions import SessionCommands
from producers.slurm import slurm_context
from schemas.control import ControlReply
from schemas.jobs import JobRequest, JobResult
from schemas.policy import Policy, load_policy
from schemas.sequence import SequenceChecker

__all__ = [
    "CONFIRM_WINDOW",
    "BatchHandle",
    "JobHandle",
    "PositionCallback",
    "ProgressCallback",
    "QPUClient",
    "slurm_context",
]

log = logging.getLogger(__name__)
_Outgoing = Outgoing  # the name tests and older callers import
DEVICE_CACHE_S = 30.0


class QPUClient(SessionCommands, BudgetCommands):
    """Submit quantum jobs to qsched and collect their results.

    Args:
        url: broker URL, or several separated by ``;`` (a cluster: tried in turn on reconnect);
            defaults to the settings' ``amqp_url``.
        namespace: defaults to the settings' namespace.
        settings: settings to use instead of loading them.
        policy: the policy whose classes exist (only for naming them in errors).
        validate_locally: check sequences against the owner's published device before sending.

    Tracing is set up from the ``OTEL_*`` variables on first use (see `brokers.tracing`), unless
    the program installed a tracer provider of its own.

    Raises:
        BrokerUnreachable: no URL answered (each is tried once).
        BrokerRefused: the broker refused the user, password or vhost.
    """

    def __init__(
        self,
        url: str | None = None,
        namespace: str | None = None,
        settings: Settings | None = None,
        policy: Policy | None = None,
        validate_locally: bool = True,
    ) -> None:
        configure_tracing("qsched-client")
        base = settings or load_settings()
        overrides: dict[str, Any] = {}
        if url:
            overrides["amqp_url"] = url
        if namespace:
            overrides["namespace"] = namespace
        self.settings = base.model_copy(update=overrides) if overrides else base
        self.policy = policy or load_policy(self.settings.policy_file)
        self.topology: Topology = build_topology(self.settings, self.policy)
        self.user = self.settings.amqp_user
        self.client_id = uuid.uuid4().hex[:12]
        self.reply_queue_name = self.topology.reply_queue(self.user, self.client_id)
        self.validate_locally = validate_locally
        self.inbox = ReplyInbox(
            self.reply_queue_name,
            self.settings.max_message_bytes,
            self.topology.reply_queue_template,
        )
        self.results: dict[str, JobResult] = self.inbox.results
        self.replies: dict[str, ControlReply] = self.inbox.replies
        self._handles: dict[str, JobHandle] = self.inbox.handles
        self._device: tuple[float, tuple[str, Any] | None] | None = (
            None  # (read at, (JSON, device))
        )
        self.checker = SequenceChecker(deep=False)  # once per distinct sequence (the owner: deep)
        self.session = ClientSession(
            self.settings, self.topology, self.reply_queue_name, self.inbox
        )

    # ---- connection -----------------------------------------------------------------------

    @property
    def urls(self) -> list[str]:
        """The broker URLs, the one in use first."""
        return self.session.urls

    def reconnect(self) -> None:
        """Open a new connection (next URL first) and resume reading the same reply queue."""
        self.session.reconnect()

    def close(self, delete_reply_queue: bool = False, interrupted: bool = False) -> None:
        """Close the connection; the reply queue stays until it expires (results of jobs still
        running can land there), unless `delete_reply_queue` (a short call that is done).
        `interrupted` (Ctrl-C went through a call on the connection): it is dropped unspoken to,
        since a request on it could wait forever (see `ClientSession.abandon`).
        """
        if interrupted:
            self.session.abandon(delete_reply_queue)
            return
        if delete_reply_queue:
            self.session.delete_reply_queue()
        self.session.close()

    def owner_running(self) -> bool | None:
        """Whether an owner holds the QPU of this namespace now (None: cannot tell); asks the
        broker, not the owner (`ClientSession.owner_running`)."""
        return self.session.owner_running()

    def __enter__(self) -> QPUClient:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.close(interrupted=isinstance(exc, KeyboardInterrupt))

    # ---- incoming ---------------------------------------------------------------------------

    def poll(self, timeout: float) -> None:
        """Deliver whatever has arrived, waiting up to `timeout` seconds for something."""
        self.session.poll(timeout)

    def wait_result(self, job_id: str, timeout: float | None = None) -> JobResult:
        """Wait for the final result of `job_id` (after a while, asking the owner for it too:
        a reply lost in a failover is still in the log; `producers.results.ASK_OWNER_AFTER_S`).

        Raises:
            ResultTimeout: nothing final arrived within `timeout` seconds.
        """
        return wait_for_result(self, job_id, timeout)

    # ---- outgoing -------------------------------------------------------------------------

    def _publish_all(self, batch: list[Outgoing], timeout_s: float = 30.0) -> dict[str, datetime]:
        """Publish and wait for every confirm; when each came (`ClientSession.publish`)."""
        return self.session.publish(batch, timeout_s)

    def fetch_device(self) -> Any | None:
        """The Pulser device the owner validates against now, or None if none was published."""
        if self._device is not None and time.monotonic() - self._device[0] < DEVICE_CACHE_S:
            return self._device[1][1] if self._device[1] is not None else None
        known = self._device[1] if self._device is not None else None
        found = read_device(
            self.session.credentialed_url(),
            self.topology.device_queue,
            self.topology.namespace,
            known,
        )
        self._device = (time.monotonic(), found)
        return found[1] if found is not None else None

    def build_job(
        self,
        sequence: Any,
        shots: int,
        job_class: str = DEFAULT_JOB_CLASS,
        priority: int = 0,
        batch_id: str | None = None,
        session_id: str | None = None,
        deadline: datetime | None = None,
        min_epoch: int | None = None,
        allow_device_switch: bool = False,
        require_qpu: bool = False,
        position_updates: bool = False,
    ) -> JobRequest:
        """A `JobRequest` for `sequence` (a `pulser.Sequence` or abstract-repr JSON), with the
        Slurm context of this process; validated against the owner's device when it published one.

        A sequence built for another device is refused unless `allow_device_switch`;
        `require_qpu` keeps the job off emulator lanes even where its class may use them;
        with `position_updates` the owner pushes the job's place in line (`JobHandle.on_position`).

        Raises:
            InvalidJob: the sequence or shot count does not fit the current device.
        """
        return job_request(
            sequence,
            shots,
            self.fetch_device() if self.validate_locally else None,
            self.checker,
            job_class=job_class,
            priority=priority,
            batch_id=batch_id,
            session_id=session_id,
            deadline=deadline,
            min_epoch=min_epoch,
            allow_device_switch=allow_device_switch,
            require_qpu=require_qpu,
            position_updates=position_updates,
        )

    def submit(
        self,
        sequence: Any,
        shots: int,
        job_class: str = DEFAULT_JOB_CLASS,
        priority: int = 0,
        batch_id: str | None = None,
        session_id: str | None = None,
        deadline: datetime | None = None,
        on_progress: ProgressCallback | None = None,
        min_epoch: int | None = None,
        require_qpu: bool = False,
        on_position: PositionCallback | None = None,
    ) -> JobHandle:
        """Submit a job; returns once the broker confirmed it.

        Args:
            sequence: a `pulser.Sequence` or its abstract-repr JSON.
            shots: number of runs.
            job_class: one of the policy's classes (default ``development``: production jobs
                may preempt it).
            priority: 0-9, higher is more urgent.
            batch_id: groups jobs of one batch.
            session_id: jobs of one hybrid loop.
            deadline: aware datetime after which the job is pointless.
            on_progress: called with each partial result.
            min_epoch: do not run before this calibration epoch.
            require_qpu: run on the QPU only, never on an emulator lane.
            on_position: called with the job's `QueueEntry` whenever its place in line or its
                hold changes, and once when it starts (pushed by the owner, not polled).

        Raises:
            InvalidJob, UnknownJobClass, QueueFull, NotAuthorised, BrokerUnreachable.
        """
        job = self.build_job(
            sequence,
            shots,
            job_class,
            priority,
            batch_id,
            session_id,
            deadline,
            min_epoch,
            require_qpu=require_qpu,
            position_updates=on_position is not None,
        )
        handle = self.submit_request(job, on_progress, on_position)
        self.note_budgets()  # what the job's account has left, logged (`producers.budgets`)
        return handle

    def submit_request(
        self,
        job: JobRequest,
        on_progress: ProgressCallback | None = None,
        on_position: PositionCallback | None = None,
    ) -> JobHandle:
        """Publish a built `JobRequest`; returns once the broker confirmed it."""
        return self.submit_many([job], on_progress, on_position)[0]

    def submit_many(
        self,
        jobs: Iterable[JobRequest],
        on_progress: ProgressCallback | None = None,
        on_position: PositionCallback | None = None,
    ) -> list[JobHandle]:
        """Publish many jobs, pipelined: up to `CONFIRM_WINDOW` confirms in flight at once.

        Each job gets its own producer span (one trace per job) when tracing is on. Its
        ``submitted_at`` is stamped just before the publish (queue wait starts there; the jobs
        are encoded with the stamp, not copied), and each handle's `queued_at` when the broker
        confirmed that job.

        `on_position` is called for the jobs built with ``position_updates``.

        Raises:
            UnknownJobClass, QueueFull, NotAuthorised, BrokerUnreachable: once every job was
            confirmed or refused, for the first refused one; the other jobs were accepted.
        """
        return send_jobs(self, self.session, jobs, self._handles, on_progress, on_position)

    def submit_batch(
        self,
        sequence: Any,
        jobs: Iterable[JobParams],
        job_class: str = "production",
        priority: int = 0,
        *,
        open: bool = False,
        batch_id: str | None = None,
        session_id: str | None = None,
        deadline: datetime | None = None,
        min_epoch: int | None = None,
        allow_device_switch: bool = False,
        require_qpu: bool = False,
    ) -> BatchHandle:
        """Submit a batch (`producers.batches`): one sequence, free variables allowed, sent and
        checked once, and `jobs` (Pulser's ``{"runs": n, "variables": {...}}``) that carry only
        their runs and variables; `open`: more jobs may be added until closed; its jobs' session
        is `session_id`, default the batch's id. Returns once the broker confirmed it.

        Raises:
            InvalidJob: the sequence, or a job's variables or runs, do not fit (one line naming
                them); nothing was sent. UnknownJobClass, QueueFull, NotAuthorised.
        """
        return submit_batch(
            self,
            sequence,
            jobs,
            job_class,
            priority,
            open=open,
            batch_id=batch_id,
            session_id=session_id,
            deadline=deadline,
            min_epoch=min_epoch,
            allow_device_switch=allow_device_switch,
            require_qpu=require_qpu,
        )

    def batch(self, batch_id: str, timeout: float = 10.0) -> BatchHandle:
        """A batch submitted from any process, found by its id (the owner keeps batches).

        Raises:
            CommandRefused: no such batch, or it is another user's.
            NoOwnerAnswered: no owner answered within `timeout` seconds.
        """
        return find_batch(self, batch_id, timeout)

    def follow(self, job_id: str, job_class: str, shots: int) -> JobHandle:
        """A handle for a job submitted elsewhere, whose progress and result the owner sends
        here once asked to (`producers.results.fetch_result_from_owner` with ``wait=True``)."""
        return self._handles.setdefault(job_id, JobHandle(job_id, job_class, shots, self))

    def fetch_result(self, job_id: str, since: Offset = "first") -> JobResult | None:
        """A job's final result (after the fact, from any client): the owner finds it without
        scanning the log (`producers.results`); with no owner answering, or with `since`, the
        event log is read (operators only).

        Args:
            job_id: the job (or its first characters, when the owner answers).
            since: where to start reading the stream (an offset, "first", or a datetime).

        Raises:
            CommandRefused: the job is another user's.
        """
        return find_result(self, job_id, since)
