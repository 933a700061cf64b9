"""The spans of one job in the owner: a consumer span from submission to result, with children.

The consumer span continues the trace whose ``traceparent`` came in the job's headers and starts
at the job's submission time, so the trace shows the queue wait; its children are ``queue wait``,
``validate`` (timed when the job was admitted), ``execute`` and ``publish result``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

from brokers.tracing import extract, messaging_attributes, tracer
from consumers.core.order import Waiting
from schemas.messages import JobError


@dataclass
class JobSpans:
    """The open spans of the job on the QPU."""

    span: Any
    execute: Any

    @classmethod
    def open(
        cls,
        job: Waiting,
        queue: str,
        trace_headers: dict[str, Any],
        attributes: dict[str, Any],
        validated_ns: tuple[int, int] | None,
    ) -> JobSpans:
        """Open the consumer span (back-dated to submission) and its finished children."""
        now_ns = time.time_ns()
        submitted_ns = min(int(job.submitted_at.timestamp() * 1e9), now_ns)
        span = tracer().start_span(
            f"{queue} process",
            context=extract(trace_headers),
            kind=SpanKind.CONSUMER,
            start_time=submitted_ns,
            attributes=messaging_attributes("process", queue, job.job_id, job.job_class)
            | attributes,
        )
        parent = set_span_in_context(span)
        tracer().start_span("queue wait", context=parent, start_time=submitted_ns).end(
            end_time=now_ns
        )
        if validated_ns is not None:
            tracer().start_span("validate", context=parent, start_time=validated_ns[0]).end(
                end_time=validated_ns[1]
            )
        execute = tracer().start_span(
            "execute",
            context=parent,
            start_time=now_ns,
            attributes={"qsched.backend": attributes.get("qsched.backend", "")},
        )
        return cls(span, execute)

    @contextmanager
    def publishing(self) -> Iterator[None]:
        """End ``execute`` and time the result publication as ``publish result``."""
        self.execute.end()
        with tracer().start_as_current_span(
            "publish result", context=set_span_in_context(self.span)
        ):
            yield

    def close(self, state: str, error: JobError | None) -> None:
        """End the consumer span with the job's final state."""
        self.span.set_attribute("qsched.state", state)
        if error is not None:
            self.span.set_status(Status(StatusCode.ERROR, error.message))
        self.span.end()

    def abandon(self, reason: str) -> None:
        """End both spans as failed (the owner lost the QPU mid-job)."""
        for span in (self.execute, self.span):
            span.set_status(Status(StatusCode.ERROR, reason))
            span.end()
