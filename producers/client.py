"""`QPUClient`: submit jobs, receive results and progress, send operators' commands.

A thin shell around kombu (py-amqp underneath; jobs are published on the py-amqp channel itself). Publisher confirms are tracked on the channel's
own ``basic.ack``/``basic.nack`` callbacks rather than kombu's ``confirm_publish``, which waits
for each confirm in turn (~2k jobs/s here): `submit_many` publishes a window of jobs and then
waits for their confirms together. Every publish is ``mandatory``, so a job for a class that has
no queue comes back (``basic.return``, always before its ack) and raises `UnknownJobClass`
instead of vanishing; a nack (a full class queue with ``x-overflow: reject-publish``) raises
`QueueFull`.

Results and progress arrive on the client's own reply queue (``<ns>.reply.<user>.<client-id>``),
which outlives a short disconnect (``x-expires``) and is matched to handles by ``correlation_id``
(= job id); `reconnect` picks it up again. The client is not thread-safe: use one per thread or
per MPI rank (or `producers.mpi` for one publisher per node).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import amqp.exceptions
import kombu
import kombu.exceptions
import pika.exceptions
from kombu import Consumer, Queue
from opentelemetry.trace import NonRecordingSpan, SpanKind, set_span_in_context

from brokers.connection import channel, classify_connect_error, connect_failure
from brokers.munge import MungeError, connection_url
from brokers.settings import Settings, load_settings
from brokers.stream import Offset, read_stream
from brokers.topology import Topology, build_topology
from brokers.tracing import configure_tracing, inject, messaging_attributes, tracer
from producers.errors import (
    BrokerRefused,
    BrokerUnreachable,
    CommandRefused,
    InvalidJob,
    NoOwnerAnswered,
    NotAuthorised,
    NotDeclared,
    QueueFull,
    ResultTimeout,
    UnknownJobClass,
)
from producers.slurm import slurm_context
from schemas.codec import CONTENT_TYPE, decode, decode_any, encode
from schemas.enums import CommandName, JobState, Mode
from schemas.errors import DecodeError
from schemas.messages import (
    ControlCommand,
    ControlReply,
    DeviceSpecs,
    Event,
    JobProgress,
    JobRequest,
    JobResult,
    Message,
    QueueEntry,
)
from schemas.policy import Policy, load_policy

log = logging.getLogger(__name__)
ProgressCallback = Callable[[JobProgress], None]
CONFIRM_WINDOW = 1000
DEVICE_CACHE_S = 30.0
CONNECTION_ERRORS = (
    kombu.exceptions.OperationalError,
    amqp.exceptions.ConnectionError,
    ConnectionError,
    OSError,
)


@dataclass
class JobHandle:
    """A submitted job; `result` waits for its final answer."""

    job_id: str
    job_class: str
    shots: int
    client: QPUClient = field(repr=False)
    on_progress: ProgressCallback | None = field(default=None, repr=False)
    last_progress: JobProgress | None = None
    span_context: Any = field(default=None, repr=False)

    def result(self, timeout: float | None = None) -> JobResult:
        """Wait for the final result.

        Raises:
            ResultTimeout: nothing final arrived within `timeout` seconds.
        """
        return self.client.wait_result(self.job_id, timeout)

    def done(self) -> bool:
        """Whether the final result has arrived (reads what is already delivered)."""
        self.client.poll(0)
        return self.job_id in self.client.results

    def status(self) -> JobState:
        """QUEUED, RUNNING (progress seen) or the final state."""
        self.client.poll(0)
        if self.job_id in self.client.results:
            return self.client.results[self.job_id].state
        return JobState.RUNNING if self.last_progress is not None else JobState.QUEUED

    def cancel(self, timeout: float = 10.0) -> ControlReply:
        """Ask the owner to cancel this job (queued or running).

        Raises:
            CommandRefused: the owner refused (e.g. the job already ended, or the owner does not
                know it); `error` holds the structured reason.
            NoOwnerAnswered: no owner answered within `timeout` seconds.
        """
        reply = self.client.control(CommandName.CANCEL, job_id=self.job_id, timeout=timeout)
        if not reply.ok:
            raise CommandRefused(f"cancel {self.job_id} refused: {reply.message}", reply.error)
        return reply

    def queue_entry(self, timeout: float = 10.0) -> QueueEntry | None:
        """The job's place in the owner's backlog (None once it ended)."""
        entries = self.client.queue(job_id=self.job_id, timeout=timeout)
        return entries[0] if entries else None

    def position(self, timeout: float = 10.0) -> int | None:
        """1 when the job starts next, 0 while it runs; None when held, unknown or ended."""
        entry = self.queue_entry(timeout)
        return entry.position if entry is not None else None

    def eta(self, timeout: float = 10.0) -> float | None:
        """Estimated seconds until the job starts (0 while it runs; None when unknown)."""
        entry = self.queue_entry(timeout)
        return entry.eta_s if entry is not None else None


@dataclass
class _Outgoing:
    message: Message
    exchange: str
    routing_key: str
    message_id: str
    priority: int = 0
    headers: dict[str, Any] = field(default_factory=dict)
    expiration_ms: int | None = None


class QPUClient:
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
        self.urls = [u.strip() for u in self.settings.amqp_url.split(";") if u.strip()]
        self.policy = policy or load_policy(self.settings.policy_file)
        self.topology: Topology = build_topology(self.settings, self.policy)
        self.user = self.settings.amqp_user
        self.client_id = uuid.uuid4().hex[:12]
        self.reply_queue_name = self.topology.reply_queue(self.user, self.client_id)
        self.validate_locally = validate_locally
        self.results: dict[str, JobResult] = {}
        self.replies: dict[str, ControlReply] = {}
        self._handles: dict[str, JobHandle] = {}
        self._device: tuple[float, Any] | None = None
        self._connection: kombu.Connection | None = None
        self._open(attempts=len(self.urls))

    # ---- connection -----------------------------------------------------------------------

    def _open(self, attempts: int = 5) -> None:
        """Connect to the URLs in turn; a refused user or vhost is not retried."""
        delay = 0.2
        for attempt in range(1, attempts + 1):
            url = self.urls[(attempt - 1) % len(self.urls)]
            connection = kombu.Connection(self._credentialed(url), heartbeat=0, connect_timeout=5)
            try:
                connection.ensure_connection(max_retries=1)
                self._setup(connection)
                return
            except amqp.exceptions.AccessRefused as exc:
                connection.release()
                if self.settings.auth != "munge":  # a password login: the generic explanation
                    failure = connect_failure(url, exc)
                    raise BrokerRefused(str(failure), hint=failure.hint) from exc
                how = "is `qsched auth serve` reachable from the broker and munged running?"
                raise NotAuthorised(
                    f"broker at {url.split('@')[-1]} refused the MUNGE login of {self.user!r} "
                    f"({how}): {exc}"
                ) from exc
            except (*CONNECTION_ERRORS, amqp.exceptions.AMQPError) as exc:
                connection.release()
                if classify_connect_error(exc) != "unreachable":
                    failure = connect_failure(url, exc)
                    raise BrokerRefused(str(failure), hint=failure.hint) from exc
                log.debug(
                    "broker %s unreachable (%s), attempt %d/%d",
                    url.split("@")[-1],
                    exc,
                    attempt,
                    attempts,
                )
                if attempt == attempts:
                    hosts = ", ".join(u.split("@")[-1] for u in self.urls)
                    raise BrokerUnreachable(f"no broker answers at {hosts} ({exc})") from exc
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _credentialed(self, url: str) -> str:
        """`url` with this connection's credentials (a fresh MUNGE credential with munge auth)."""
        try:
            return connection_url(url, self.settings.auth, self.settings.munge_socket)
        except MungeError as exc:
            raise BrokerUnreachable(f"cannot authenticate with MUNGE: {exc}") from exc

    def _setup(self, connection: kombu.Connection) -> None:
        self._connection = connection
        self._channel = connection.channel()
        self._channel.confirm_select()
        self._next_tag = 1
        self._unconfirmed: dict[int, str] = {}
        self._nacked: set[str] = set()
        self._returned: set[str] = set()
        self._channel.events["basic_ack"].add(self._on_ack)
        self._channel.events["basic_nack"].add(self._on_nack)
        self._channel.events["basic_return"].add(self._on_return)
        queue = Queue(
            self.reply_queue_name,
            durable=False,
            auto_delete=False,
            queue_arguments=self.topology.reply_queue_arguments(),
            channel=self._channel,
        )
        queue.declare()
        self._consumer = Consumer(
            self._channel, queues=[queue], on_message=self._on_message, accept=None
        )
        self._consumer.consume()

    def reconnect(self) -> None:
        """Open a new connection (next URL first) and resume reading the same reply queue."""
        self.close()
        self.urls = self.urls[1:] + self.urls[:1]
        self._open()

    def close(self) -> None:
        """Close the connection; the reply queue stays until it expires."""
        if self._connection is not None:
            self._connection.release()
            self._connection = None

    def __enter__(self) -> QPUClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- confirms and incoming ------------------------------------------------------------

    def _settle(self, tag: int, multiple: bool) -> list[str]:
        tags = [t for t in self._unconfirmed if t <= tag] if multiple else [tag]
        return [self._unconfirmed.pop(t) for t in tags if t in self._unconfirmed]

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        self._settle(delivery_tag, multiple)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self._nacked.update(self._settle(delivery_tag, multiple))

    def _on_return(self, exc: Exception, exchange: str, routing_key: str, message: Any) -> None:
        self._returned.add(message.properties.get("message_id", ""))

    def _on_message(self, message: kombu.Message) -> None:
        try:
            decoded = decode_any(
                message.body, message.properties.get("type"), self.settings.max_message_bytes
            )
        except DecodeError:
            message.ack()
            return
        if isinstance(decoded, JobResult):
            if decoded.job_id not in self.results:  # first answer wins; later ones are duplicates
                self.results[decoded.job_id] = decoded
                self._trace_receipt(decoded)
        elif isinstance(decoded, JobProgress):
            handle = self._handles.get(decoded.job_id)
            if handle is not None:
                handle.last_progress = decoded
                if handle.on_progress is not None:
                    handle.on_progress(decoded)
        elif isinstance(decoded, ControlReply):
            self.replies[decoded.command_id] = decoded
        message.ack()

    def _trace_receipt(self, result: JobResult) -> None:
        """Close the job's trace with a span for the result reaching the submitter."""
        handle = self._handles.get(result.job_id)
        if handle is None or handle.span_context is None:
            return
        parent = set_span_in_context(NonRecordingSpan(handle.span_context))
        attributes = messaging_attributes("receive", self.reply_queue_name, result.job_id) | {
            "qsched.state": result.state.value,
            "qsched.shots_measured": sum(result.counts.values()),
        }
        tracer().start_span(
            f"{self.reply_queue_name} receive",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes=attributes,
        ).end()

    def poll(self, timeout: float) -> None:
        """Deliver whatever has arrived, waiting up to `timeout` seconds for something."""
        if self._connection is None:
            self._open()
        assert self._connection is not None
        try:
            self._connection.drain_events(timeout=timeout)
        except TimeoutError:
            pass
        except CONNECTION_ERRORS:
            log.warning("lost the broker; reconnecting")
            self.reconnect()

    def wait_result(self, job_id: str, timeout: float | None = None) -> JobResult:
        """Wait for the final result of `job_id`.

        Raises:
            ResultTimeout: nothing final arrived within `timeout` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while job_id not in self.results:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise ResultTimeout(f"no result for job {job_id} within {timeout} s")
            self.poll(min(left, 1.0) if left is not None else 1.0)
        return self.results[job_id]

    # ---- outgoing -------------------------------------------------------------------------

    def _publish_nowait(self, out: _Outgoing) -> None:
        body = encode(out.message, self.settings.max_message_bytes)
        # Straight onto the py-amqp channel: kombu's Producer adds per-message work we don't need.
        message = amqp.Message(
            body,
            content_type=CONTENT_TYPE,
            type=out.message.type_name(),
            message_id=out.message_id,
            user_id=self.user,
            timestamp=int(time.time()),
            priority=out.priority,
            reply_to=self.reply_queue_name,
            correlation_id=out.message_id,
            delivery_mode=2,
            application_headers=out.headers,
        )
        if out.expiration_ms is not None:
            message.properties["expiration"] = str(out.expiration_ms)
        self._channel.basic_publish(
            message, exchange=out.exchange, routing_key=out.routing_key, mandatory=True
        )
        self._unconfirmed[self._next_tag] = out.message_id
        self._next_tag += 1

    def _publish_all(self, batch: list[_Outgoing], timeout_s: float = 30.0) -> None:
        """Publish with a sliding window of at most `CONFIRM_WINDOW` unconfirmed messages.

        Raises:
            UnknownJobClass, QueueFull, NotAuthorised, NotDeclared, BrokerUnreachable.
        """
        for attempt in (1, 2):
            try:
                for out in batch:
                    if len(self._unconfirmed) >= CONFIRM_WINDOW:
                        self._wait_confirms(timeout_s, below=CONFIRM_WINDOW // 2)
                    self._publish_nowait(out)
                self._wait_confirms(timeout_s)
                break
            except amqp.exceptions.NotFound as exc:
                self.reconnect()
                raise NotDeclared(f"{batch[0].exchange} does not exist on this broker") from exc
            except amqp.exceptions.AccessRefused as exc:
                self.reconnect()
                raise NotAuthorised(
                    f"user {self.user!r} may not publish to {batch[0].exchange}: {exc}"
                ) from exc
            except CONNECTION_ERRORS:
                if attempt == 2:
                    raise
                # Publishing again may duplicate a job the broker had taken; the owner answers a
                # duplicate from its log and never runs a job twice.
                log.warning("lost the broker while publishing; reconnecting and publishing again")
                self.reconnect()
        self._raise_refusals(batch)

    def _wait_confirms(self, timeout_s: float, below: int = 1) -> None:
        """Process broker frames until fewer than `below` publishes are unconfirmed."""
        assert self._connection is not None
        deadline = time.monotonic() + timeout_s
        while len(self._unconfirmed) >= below:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrokerUnreachable(
                    f"{len(self._unconfirmed)} publishes not confirmed within {timeout_s} s"
                )
            try:
                self._connection.drain_events(timeout=min(left, 1.0))
            except TimeoutError:
                continue

    def _raise_refusals(self, window: list[_Outgoing]) -> None:
        returned = [o for o in window if o.message_id in self._returned]
        nacked = [o for o in window if o.message_id in self._nacked]
        self._returned.difference_update(o.message_id for o in window)
        self._nacked.difference_update(o.message_id for o in window)
        if returned:
            key = returned[0].routing_key
            raise UnknownJobClass(
                f"no queue for {key!r} on {returned[0].exchange}; classes: {', '.join(self.topology.class_names)}"
            )
        if nacked:
            raise QueueFull(
                f"queue for {nacked[0].routing_key!r} is full; the broker refused {len(nacked)} job(s)"
            )

    def fetch_device(self) -> Any | None:
        """The Pulser device the owner validates against now, or None if none was published."""
        if self._device is not None and time.monotonic() - self._device[0] < DEVICE_CACHE_S:
            return self._device[1]
        from schemas.sequence import load_device

        device = None
        with channel(self._credentialed(self.urls[0]), name="qsched-fetch-device") as ch:
            method, props, body = ch.basic_get(self.topology.device_queue)
            if method is not None:
                ch.basic_nack(method.delivery_tag, requeue=True)
                try:
                    device = load_device(decode(body, props.type, DeviceSpecs).device)
                except (DecodeError, ValueError):
                    device = None
        self._device = (time.monotonic(), device)
        return device

    def build_job(
        self,
        sequence: Any,
        shots: int,
        job_class: str = "production",
        priority: int = 0,
        batch_id: str | None = None,
        session_id: str | None = None,
        deadline: datetime | None = None,
        min_epoch: int | None = None,
        allow_device_switch: bool = False,
    ) -> JobRequest:
        """A `JobRequest` for `sequence` (a `pulser.Sequence` or abstract-repr JSON), with the
        Slurm context of this process; validated against the owner's device when it published one.

        A sequence built for another device is refused unless `allow_device_switch`.

        Raises:
            InvalidJob: the sequence or shot count does not fit the current device.
        """
        text = sequence if isinstance(sequence, str) else sequence.to_abstract_repr()
        job = JobRequest(
            job_class=job_class,
            priority=priority,
            shots=shots,
            sequence=text,
            batch_id=batch_id,
            session_id=session_id,
            deadline=deadline,
            min_epoch=min_epoch,
            allow_device_switch=allow_device_switch,
            slurm=slurm_context(),
        )
        if self.validate_locally:
            device = self.fetch_device()
            if device is not None:
                from schemas.sequence import validate_sequence

                problem = validate_sequence(text, device, shots, allow_device_switch)
                if problem is not None:
                    raise InvalidJob(problem)
        return job

    def submit(
        self,
        sequence: Any,
        shots: int,
        job_class: str = "production",
        priority: int = 0,
        batch_id: str | None = None,
        session_id: str | None = None,
        deadline: datetime | None = None,
        on_progress: ProgressCallback | None = None,
        min_epoch: int | None = None,
    ) -> JobHandle:
        """Submit a job; returns once the broker confirmed it.

        Args:
            sequence: a `pulser.Sequence` or its abstract-repr JSON.
            shots: number of runs.
            job_class: one of the policy's classes.
            priority: 0-9, higher is more urgent.
            batch_id: groups jobs of one batch.
            session_id: jobs of one hybrid loop.
            deadline: aware datetime after which the job is pointless.
            on_progress: called with each partial result.
            min_epoch: do not run before this calibration epoch.

        Raises:
            InvalidJob, UnknownJobClass, QueueFull, NotAuthorised, BrokerUnreachable.
        """
        job = self.build_job(
            sequence, shots, job_class, priority, batch_id, session_id, deadline, min_epoch
        )
        return self.submit_request(job, on_progress)

    def submit_request(
        self, job: JobRequest, on_progress: ProgressCallback | None = None
    ) -> JobHandle:
        """Publish a built `JobRequest`; returns once the broker confirmed it."""
        return self.submit_many([job], on_progress)[0]

    def submit_many(
        self, jobs: Iterable[JobRequest], on_progress: ProgressCallback | None = None
    ) -> list[JobHandle]:
        """Publish many jobs, pipelined: confirms are awaited per window, not per job.

        Each job gets its own producer span (one trace per job).

        Raises:
            UnknownJobClass, QueueFull, NotAuthorised, BrokerUnreachable: for the first window
            with a refusal; jobs of earlier windows were accepted.
        """
        exchange = self.topology.jobs_exchange
        handles, batch = [], []
        for job in jobs:
            handle = JobHandle(job.job_id, job.job_class, job.shots, self, on_progress)
            attributes = messaging_attributes("publish", exchange, job.job_id, job.job_class) | {
                "qsched.job_class": job.job_class,
                "qsched.shots": job.shots,
                "qsched.priority": job.priority,
            }
            with tracer().start_as_current_span(
                f"{exchange} publish", kind=SpanKind.PRODUCER, attributes=attributes
            ) as span:
                headers: dict[str, Any] = {}
                inject(headers)
                handle.span_context = span.get_span_context()
            self._handles[job.job_id] = handle
            handles.append(handle)
            batch.append(_Outgoing(job, exchange, job.job_class, job.job_id, job.priority, headers))
        self._publish_all(batch)
        return handles

    def fetch_result(self, job_id: str, since: Offset = "first") -> JobResult | None:
        """Find a job's final result in the event log (after the fact, from any client).

        Args:
            job_id: the job.
            since: where to start reading the stream (an offset, "first", or a datetime).
        """
        if job_id in self.results:
            return self.results[job_id]
        found = None
        with channel(self._credentialed(self.urls[0]), name="qsched-fetch-result") as ch:
            try:
                for record in read_stream(ch, self.topology.events_stream, since):
                    try:
                        event = decode(
                            record.body,
                            record.properties.type,
                            Event,
                            self.settings.max_message_bytes,
                        )
                    except DecodeError:
                        continue
                    if event.job_id == job_id and event.result is not None:
                        found = event.result
            except pika.exceptions.ChannelClosedByBroker as exc:
                if exc.reply_code != 403:
                    raise
                raise NotAuthorised(
                    f"user {self.user!r} may not read the event log (operators only); "
                    "results of your own jobs arrive on your reply queue"
                ) from exc
        return found

    def queue(
        self,
        *,
        user: str | None = None,
        job_class: str | None = None,
        job_id: str | None = None,
        limit: int | None = None,
        timeout: float = 10.0,
    ) -> list[QueueEntry]:
        """The owner's backlog in policy order: position, ETA, hold reason (no sequences).

        Raises:
            ResultTimeout: no owner answered within `timeout` seconds.
        """
        reply = self.control(
            CommandName.QUEUE,
            user=user,
            job_class=job_class,
            job_id=job_id,
            limit=limit,
            timeout=timeout,
        )
        return list(reply.queue or [])

    def control(
        self,
        command: CommandName,
        *,
        job_id: str | None = None,
        mode: Mode | None = None,
        message: str | None = None,
        force: bool = False,
        specs: str | None = None,
        allocation: str | None = None,
        user: str | None = None,
        job_class: str | None = None,
        limit: int | None = None,
        priority: int | None = None,
        message_id: str | None = None,
        timeout: float = 10.0,
    ) -> ControlReply:
        """Send an operator's command and wait for the owner's reply.

        The command expires in the broker after `timeout` seconds, so one that no owner answered
        is never applied later by an owner that starts then.

        Returns:
            The reply, ``ok`` or not (a refusal carries a structured `error`).

        Raises:
            NoOwnerAnswered: no owner answered within `timeout` seconds.
        """
        cmd = ControlCommand(
            command=command,
            job_id=job_id,
            mode=mode,
            message=message,
            force=force,
            specs=specs,
            allocation=allocation,
            user=user,
            job_class=job_class,
            limit=limit,
            priority=priority,
            message_id=message_id,
        )
        self._publish_all(
            [
                _Outgoing(
                    cmd,
                    self.topology.control_exchange,
                    f"control.{command.value}",
                    cmd.command_id,
                    expiration_ms=max(int(timeout * 1000), 1),
                )
            ]
        )
        deadline = time.monotonic() + timeout
        while cmd.command_id not in self.replies:
            left = deadline - time.monotonic()
            if left <= 0:
                raise NoOwnerAnswered(
                    f"no QPU owner answered {command.value} within {timeout:g} s; "
                    "the command expired unapplied"
                )
            self.poll(min(left, 0.5))
        return self.replies.pop(cmd.command_id)
