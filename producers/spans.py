"""The client's side of a job's trace: the ``send`` span of each job, its context in the headers.

The span starts at the job's ``submitted_at`` (the owner's spans, which it is the parent of, never
start before that instant) and ends when the broker confirmed the publish, or refused it (ERROR
status). Names and attributes follow the messaging conventions: ``send <ns>.jobs``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer, set_span_in_context

from brokers.tracing import inject, messaging_attributes, span_name, time_ns_of, tracer
from schemas.jobs import JobRequest


def send_span(
    exchange: str,
    job: JobRequest,
    headers: dict[str, Any],
    start_ns: int,
    span_tracer: Tracer | None = None,
) -> Span:
    """Open the job's producer span at `start_ns`, its context injected into `headers`.

    A batch passes `span_tracer` (``tracer()`` once): looking the tracer up costs about a third
    of a span with the SDK's provider.
    """
    attributes = messaging_attributes("send", exchange, job.job_id, job.job_class) | {
        "qsched.job_class": job.job_class,
        "qsched.shots": job.shots,
        "qsched.priority": job.priority,
    }
    span = (span_tracer or tracer()).start_span(
        span_name("send", exchange),
        kind=SpanKind.PRODUCER,
        start_time=start_ns,
        attributes=attributes,
    )
    inject(headers, set_span_in_context(span))
    return span


def end_send_span(span: Span, confirmed_at: datetime | None, refused: str | None = None) -> None:
    """End a send span when the broker confirmed the job (`confirmed_at`), or as failed."""
    if confirmed_at is None:
        span.set_status(Status(StatusCode.ERROR, refused or "not confirmed by the broker"))
        span.end()
        return
    start = getattr(span, "start_time", None) or 0
    span.end(end_time=max(time_ns_of(confirmed_at), start))
