"""The client's reply inbox: results, progress, positions and command replies from its queue.

Everything the owner answers (and a job's receipt, when asked for) arrives on the client's own queue (``<ns>.reply.<user>.<client-id>``),
which outlives a short disconnect (``x-expires``), and is matched by ``correlation_id`` (= job id
or command id). The inbox outlives connections: results received before a reconnect stay.
The first final result of a job wins; later copies (a redelivered job answered from the log)
are duplicates and ignored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import kombu
from opentelemetry.trace import NonRecordingSpan, SpanKind, set_span_in_context

from brokers.tracing import messaging_attributes, tracer
from schemas.codec import decode_any
from schemas.errors import DecodeError
from schemas.messages import ControlReply, JobPosition, JobProgress, JobReceipt, JobResult

if TYPE_CHECKING:
    from producers.handle import JobHandle


class ReplyInbox:
    """Holds what arrived on the reply queue, by job or command id.

    Args:
        reply_queue: the queue's name (for the receipt spans).
        max_message_bytes: decoding limit.
    """

    def __init__(self, reply_queue: str, max_message_bytes: int) -> None:
        self.reply_queue = reply_queue
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
                self._trace_receipt(decoded)
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

    def _trace_receipt(self, result: JobResult) -> None:
        """Close the job's trace with a span for the result reaching the submitter."""
        handle = self.handles.get(result.job_id)
        if handle is None or handle.span_context is None:
            return
        parent = set_span_in_context(NonRecordingSpan(handle.span_context))
        attributes = messaging_attributes("receive", self.reply_queue, result.job_id) | {
            "qsched.state": result.state.value,
            "qsched.shots_measured": sum(result.counts.values()),
        }
        tracer().start_span(
            f"{self.reply_queue} receive",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes=attributes,
        ).end()
