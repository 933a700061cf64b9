"""The client's reply inbox: results, progress, positions and command replies from its queue.

Everything the owner answers (and a job's receipt, when asked for) arrives on the client's own queue (``<ns>.reply.<user>.<client-id>``),
which outlives a short disconnect (``x-expires``), and is matched by ``correlation_id`` (= job id
or command id). The inbox outlives connections: results received before a reconnect stay.
The first final result of a job wins; later copies (a redelivered job answered from the log)
are duplicates and ignored.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import kombu
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanKind,
    Status,
    StatusCode,
    get_current_span,
    set_span_in_context,
)

from brokers.tracing import extract, messaging_attributes, span_name, time_ns_of, tracer
from schemas.codec import decode_any
from schemas.control import ControlReply
from schemas.enums import JobState
from schemas.errors import DecodeError
from schemas.jobs import JobPosition, JobProgress, JobReceipt, JobResult

if TYPE_CHECKING:
    from producers.handle import JobHandle


class ReplyInbox:
    """Holds what arrived on the reply queue, by job or command id.

    Args:
        reply_queue: the queue's name (for the receipt spans).
        max_message_bytes: decoding limit.
        reply_template: what reply queues' names are instances of (the receipt spans' name).
    """

    def __init__(
        self, reply_queue: str, max_message_bytes: int, reply_template: str | None = None
    ) -> None:
        self.reply_queue = reply_queue
        self.reply_template = reply_template
        self.max_message_bytes = max_message_bytes
        self.results: dict[str, JobResult] = {}
        self.replies: dict[str, ControlReply] = {}
        self.receipts: dict[str, int] = {}  # job id -> number (`JobRequest.receipt`)
        self.handles: dict[str, JobHandle] = {}

    def on_message(self, message: kombu.Message) -> None:
        """Record one delivery from the reply queue and ack it (undecodable ones are dropped)."""
        try:
            decoded = decode_any(
                message.body, message.properties.get("type"), self.max_message_bytes
            )
        except DecodeError:
            message.ack()
            return
        if isinstance(decoded, JobResult):
            if decoded.job_id not in self.results:  # first answer wins; later ones are duplicates
                self.results[decoded.job_id] = decoded
                self._trace_receipt(decoded, message.headers)
        elif isinstance(decoded, JobProgress):
            handle = self.handles.get(decoded.job_id)
            if handle is not None:
                handle.last_progress = decoded
                if handle.on_progress is not None:
                    handle.on_progress(decoded)
        elif isinstance(decoded, JobPosition):
            handle = self.handles.get(decoded.job_id)
            if handle is not None:
                handle.last_position = decoded.entry
                if handle.on_position is not None:
                    handle.on_position(decoded.entry)
        elif isinstance(decoded, ControlReply):
            self.replies[decoded.command_id] = decoded
        elif isinstance(decoded, JobReceipt):
            self.receipts[decoded.job_id] = decoded.number
        message.ack()

    def _trace_receipt(self, result: JobResult, headers: Mapping[str, Any] | None) -> None:
        """Close the job's trace with a span for the result reaching the submitter: a child of
        the owner's ``send`` of the result (its context came in the headers), else of this
        client's ``send`` of the job. It starts no earlier than the result's ``ended_at``, when
        the owner's send span starts (its clock may run ahead of this host's)."""
        handle = self.handles.get(result.job_id)
        if handle is None or handle.span_context is None:
            return
        context = extract(headers)
        if not get_current_span(context).get_span_context().is_valid:
            context = set_span_in_context(NonRecordingSpan(handle.span_context))
        template = self.reply_template
        attributes = messaging_attributes(
            "receive", self.reply_queue, result.job_id, template=template
        ) | {
            "qsched.state": result.state.value,
            "qsched.shots_measured": sum(result.counts.values()),
        }
        start_ns = max(time.time_ns(), time_ns_of(result.timings.ended_at))
        span = tracer().start_span(
            span_name("receive", self.reply_queue, template),
            context=context,
            kind=SpanKind.CONSUMER,
            start_time=start_ns,
            attributes=attributes,
        )
        if result.state is not JobState.DONE and result.error is not None:
            span.set_attribute("error.type", result.error.code.value)
            span.set_status(
                Status(StatusCode.ERROR, f"{result.state.value}: {result.error.message}")
            )
        span.end(end_time=max(time.time_ns(), start_ns))
