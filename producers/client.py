"""`QPUClient`: submit jobs, receive results and progress, send operators' commands.

A thin shell around kombu. Every publish waits for the broker's confirm, with ``mandatory`` so a
job for a class that has no queue comes back (returned) and raises `UnknownJobClass` instead of
vanishing. Results and progress arrive on the client's own reply queue
(``<ns>.reply.<user>.<client-id>``), which outlives a short disconnect (``x-expires``), and are
matched to handles by ``correlation_id`` (= job id). The client is not thread-safe: use one per
thread or per MPI rank.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import amqp.exceptions
import kombu
import kombu.exceptions
from kombu import Consumer, Exchange, Producer, Queue
from opentelemetry.trace import NonRecordingSpan, SpanKind, set_span_in_context

from brokers.connection import channel
from brokers.settings import Settings, load_settings
from brokers.stream import Offset, read_stream
from brokers.topology import Topology, build_topology
from brokers.tracing import inject, messaging_attributes, tracer
from producers.errors import (
    BrokerUnreachable,
    NotAuthorised,
    NotDeclared,
    QueueFull,
    ResultTimeout,
    UnknownJobClass,
)
from schemas.codec import CONTENT_TYPE, decode, decode_any, encode
from schemas.enums import CommandName, Mode
from schemas.errors import DecodeError
from schemas.messages import (
    ControlCommand,
    ControlReply,
    Event,
    JobProgress,
    JobRequest,
    JobResult,
    Message,
)
from schemas.policy import Policy, load_policy

ProgressCallback = Callable[[JobProgress], None]


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

    def cancel(self, timeout: float = 10.0) -> ControlReply:
        """Ask the owner to cancel this job (queued or running)."""
        return self.client.control(CommandName.CANCEL, job_id=self.job_id, timeout=timeout)


class QPUClient:
    """Submit quantum jobs to qsched and collect their results.

    Args:
        url: broker URL; defaults to the settings' ``amqp_url``.
        namespace: defaults to the settings' namespace.
        settings: settings to use instead of loading them.
        policy: the policy whose classes exist (only for naming them in errors).
    """

    def __init__(
        self,
        url: str | None = None,
        namespace: str | None = None,
        settings: Settings | None = None,
        policy: Policy | None = None,
    ) -> None:
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
        self.results: dict[str, JobResult] = {}
        self.replies: dict[str, ControlReply] = {}
        self._handles: dict[str, JobHandle] = {}
        self._returned: set[str] = set()
        self._connection: kombu.Connection | None = None
        self._open()

    # ---- connection -----------------------------------------------------------------------

    def _open(self) -> None:
        connection = kombu.Connection(
            self.settings.amqp_url, transport_options={"confirm_publish": True}, heartbeat=0
        )
        try:
            connection.ensure_connection(max_retries=3, interval_start=0.2, interval_step=0.5)
        except kombu.exceptions.OperationalError as exc:
            raise BrokerUnreachable(f"cannot reach the broker: {exc}") from exc
        self._connection = connection
        self._channel = connection.channel()
        self._channel.events["basic_return"].add(self._on_return)
        self._producer = Producer(self._channel)
        self._reply_queue = Queue(
            self.reply_queue_name,
            durable=False,
            auto_delete=False,
            queue_arguments=self.topology.reply_queue_arguments(),
            channel=self._channel,
        )
        self._reply_queue.declare()
        self._consumer = Consumer(
            self._channel,
            queues=[self._reply_queue],
            on_message=self._on_message,
            accept=None,
            no_ack=False,
        )
        self._consumer.consume()

    def close(self) -> None:
        """Close the connection; the reply queue stays until it expires."""
        if self._connection is not None:
            self._connection.release()
            self._connection = None

    def __enter__(self) -> QPUClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- incoming -------------------------------------------------------------------------

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
        assert self._connection is not None
        with contextlib.suppress(TimeoutError):
            self._connection.drain_events(timeout=timeout)

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

    def _publish(
        self,
        exchange: str,
        routing_key: str,
        message: Message,
        message_id: str,
        priority: int = 0,
        headers: dict[str, Any] | None = None,
    ) -> None:
        body = encode(message, self.settings.max_message_bytes)
        try:
            self._producer.publish(
                body,
                exchange=Exchange(exchange, no_declare=True),
                routing_key=routing_key,
                content_type=CONTENT_TYPE,
                content_encoding="binary",
                type=message.type_name(),
                message_id=message_id,
                user_id=self.user,
                timestamp=int(time.time()),
                priority=priority,
                reply_to=self.reply_queue_name,
                correlation_id=message_id,
                delivery_mode=2,
                headers=headers or {},
                mandatory=True,
                declare=[],
            )
        except amqp.exceptions.MessageNacked as exc:
            raise QueueFull(
                f"queue for {routing_key!r} is full; the broker refused the job"
            ) from exc
        except amqp.exceptions.NotFound as exc:
            raise NotDeclared(
                f"{exchange} does not exist on this broker: run `qsched broker declare` "
                "or start an owner"
            ) from exc
        except amqp.exceptions.AccessRefused as exc:
            raise NotAuthorised(f"user {self.user!r} may not publish to {exchange}: {exc}") from exc
        if message_id in self._returned:
            self._returned.discard(message_id)
            raise UnknownJobClass(
                f"no queue for {routing_key!r} on {exchange}; classes: {', '.join(self.topology.class_names)}"
            )

    def fetch_result(self, job_id: str, since: Offset = "first") -> JobResult | None:
        """Find a job's final result in the event log (after the fact, from any client).

        Args:
            job_id: the job.
            since: where to start reading the stream (an offset, "first", or a datetime).
        """
        if job_id in self.results:
            return self.results[job_id]
        found = None
        with channel(self.settings.amqp_url, name="qsched-fetch-result") as ch:
            for record in read_stream(ch, self.topology.events_stream, since):
                try:
                    event = decode(
                        record.body, record.properties.type, Event, self.settings.max_message_bytes
                    )
                except DecodeError:
                    continue
                if event.job_id == job_id and event.result is not None:
                    found = event.result
        return found

    def submit(
        self,
        sequence: Any,
        shots: int,
        job_class: str = "production",
        priority: int = 0,
        batch_id: str | None = None,
        session_id: str | None = None,
        deadline: Any = None,
        on_progress: ProgressCallback | None = None,
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

        Raises:
            UnknownJobClass, QueueFull, NotAuthorised, BrokerUnreachable.
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
        )
        return self.submit_request(job, on_progress)

    def submit_request(
        self,
        job: JobRequest,
        on_progress: ProgressCallback | None = None,
        headers: dict[str, Any] | None = None,
    ) -> JobHandle:
        """Publish a built `JobRequest` in a producer span; returns once the broker confirmed it."""
        handle = JobHandle(job.job_id, job.job_class, job.shots, self, on_progress)
        self._handles[job.job_id] = handle
        exchange = self.topology.jobs_exchange
        attributes = messaging_attributes("publish", exchange, job.job_id, job.job_class) | {
            "qsched.job_class": job.job_class,
            "qsched.shots": job.shots,
            "qsched.priority": job.priority,
        }
        with tracer().start_as_current_span(
            f"{exchange} publish", kind=SpanKind.PRODUCER, attributes=attributes
        ) as span:
            carried = dict(headers or {})
            inject(carried)
            self._publish(exchange, job.job_class, job, job.job_id, job.priority, carried)
            handle.span_context = span.get_span_context()
        return handle

    def control(
        self,
        command: CommandName,
        *,
        job_id: str | None = None,
        mode: Mode | None = None,
        message: str | None = None,
        timeout: float = 10.0,
    ) -> ControlReply:
        """Send an operator's command and wait for the owner's reply.

        Raises:
            ResultTimeout: no owner answered within `timeout` seconds.
        """
        cmd = ControlCommand(command=command, job_id=job_id, mode=mode, message=message)
        self._publish(
            self.topology.control_exchange, f"control.{command.value}", cmd, cmd.command_id
        )
        deadline = time.monotonic() + timeout
        while cmd.command_id not in self.replies:
            if time.monotonic() > deadline:
                raise ResultTimeout(
                    f"no owner answered {command.value} within {timeout} s (is one running?)"
                )
            self.poll(0.5)
        return self.replies.pop(cmd.command_id)
