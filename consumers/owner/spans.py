"""The owner's side of a job's trace, named and ordered by the messaging conventions.

One trace per job. The client's ``send <ns>.jobs`` (PRODUCER) starts at the job's
``submitted_at`` and is the parent of the owner's ``process <ns>.jobs.<class>`` (CONSUMER),
which starts when the owner took the job (its validation) and ends once the result is sent. Its
children: ``validate``; a ``queue wait`` for each time the job waited (from its acceptance, or
from the end of a run, to the next start); an ``execute`` for each run (where it ran, attempt,
how the run ended); and ``send <ns>.reply.{user}.{client_id}`` (PRODUCER), whose context travels
in the result's headers so the client's ``receive`` is its child. A reply queue is per client,
so names carry its template, never the queue (``messaging.destination.name`` has that).

No span starts before its parent: every owner span starts no earlier than the job's
``submitted_at`` (the client's send span's start, on the client's clock, which may run ahead of
this host's) and every child no earlier than its parent; the send span starts at the result's
``ended_at``, which the client's receipt span does not precede either. A job that does not end
DONE carries ERROR status with its error's message and ``error.type`` = the error code.
A job that ends without running (canceled or timed out while waiting) still gets its
``process`` span, built when its result is sent.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from opentelemetry.trace import Span, SpanKind, Status, StatusCode, set_span_in_context

from brokers.topology import Topology
from brokers.tracing import extract, inject, messaging_attributes, span_name, tracer
from brokers.tracing import time_ns_of as ns
from consumers.core.order import Waiting
from schemas.enums import JobState
from schemas.jobs import JobResult

REMEMBERED_VALIDATIONS = 10_000


def job_attributes(job: Waiting) -> dict[str, Any]:
    """The qsched attributes every owner span of `job` shares."""
    return {
        "qsched.job_class": job.job_class,
        "qsched.shots": job.shots,
        "qsched.priority": job.priority,
        "qsched.user": job.user,
    }


def mark_failed(span: Span, result: JobResult) -> None:
    """ERROR status and ``error.type`` on `span` when `result` is not DONE."""
    if result.state is JobState.DONE or result.error is None:
        return
    span.set_attribute("error.type", result.error.code.value)
    span.set_status(Status(StatusCode.ERROR, f"{result.state.value}: {result.error.message}"))


@dataclass
class JobSpans:
    """The owner's open spans of one job: `process`, and the run's `execute` while it runs."""

    process: Span
    floor_ns: int
    waiting_since_ns: int
    execute: Span | None = None
    execute_start_ns: int = 0
    runs: int = 0

    @classmethod
    def open(
        cls, job: Waiting, queue: str, validated_ns: tuple[int, int] | None, now_ns: int
    ) -> JobSpans:
        """The job's `process` span (and its `validate` child, when the timing is known)."""
        submitted, accepted = ns(job.submitted_at), ns(job.queued_at)
        taken = min(accepted, validated_ns[0]) if validated_ns is not None else accepted
        start = min(max(taken, submitted), now_ns)
        process = tracer().start_span(
            span_name("process", queue),
            context=extract(job.trace),
            kind=SpanKind.CONSUMER,
            start_time=start,
            attributes=messaging_attributes("process", queue, job.job_id, job.job_class)
            | job_attributes(job),
        )
        if validated_ns is not None:
            begin = max(validated_ns[0], start)
            child = tracer().start_span(
                "validate", context=set_span_in_context(process), start_time=begin
            )
            child.end(end_time=max(validated_ns[1], begin))
        return cls(process, start, max(accepted, start))

    def _child(self, name: str, start_ns: int, attributes: dict[str, Any] | None = None) -> Span:
        return tracer().start_span(
            name,
            context=set_span_in_context(self.process),
            start_time=max(start_ns, self.floor_ns),
            attributes=attributes,
        )

    def _waited_until(self, at_ns: int) -> None:
        wait = self._child("queue wait", self.waiting_since_ns)
        wait.end(end_time=max(at_ns, self.waiting_since_ns))

    def run_started(self, at_ns: int, attributes: dict[str, Any]) -> None:
        """A run began at `at_ns`: the wait before it ends, its `execute` opens."""
        self._waited_until(at_ns)
        self.runs += 1
        self.execute_start_ns = max(at_ns, self.floor_ns)
        self.execute = self._child("execute", at_ns, attributes)

    def run_ended(self, at_ns: int, outcome: str) -> None:
        """The run ended without ending the job (preempted, requeued, retried): it waits again."""
        if self.execute is not None:
            self.execute.set_attribute("qsched.run.outcome", outcome)
            self.execute.end(end_time=max(at_ns, self.execute_start_ns))
            self.execute = None
        self.waiting_since_ns = max(at_ns, self.floor_ns)

    def ending(self, result: JobResult) -> int:
        """The job ended (its result made at ``ended_at``): close the run or the wait; the
        instant the result's send span starts."""
        ended = max(ns(result.timings.ended_at), self.floor_ns)
        if self.execute is not None:
            self.execute.set_attribute("qsched.run.outcome", result.state.value)
            mark_failed(self.execute, result)
            self.execute.end(end_time=max(ended, self.execute_start_ns))
            self.execute = None
            return max(ended, self.execute_start_ns)
        self._waited_until(ended)
        return max(ended, self.waiting_since_ns)

    def close(self, result: JobResult) -> None:
        """End `process` with the job's final state (and its error)."""
        self.process.set_attribute("qsched.state", result.state.value)
        self.process.set_attribute("qsched.runs", self.runs)
        mark_failed(self.process, result)
        self.process.end()

    def abandon(self, reason: str) -> None:
        """End the open spans as failed (the owner lost the QPU mid-job)."""
        for span in (self.execute, self.process):
            if span is not None:
                span.set_status(Status(StatusCode.ERROR, reason))
                span.end()
        self.execute = None


class JobTraces:
    """The owner's spans of the jobs it runs or answers, by job id (the shell's, one per
    activation). Callers check `brokers.tracing.tracing_active` before starting spans, so an
    owner without a tracer provider builds nothing."""

    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        self.open: dict[str, JobSpans] = {}
        self.validated: OrderedDict[str, tuple[int, int]] = OrderedDict()

    def took(self, job_id: str, validated_ns: tuple[int, int]) -> None:
        """When the job's delivery was validated (the `validate` span, made at its start)."""
        self.validated[job_id] = validated_ns
        if len(self.validated) > REMEMBERED_VALIDATIONS:
            self.validated.popitem(last=False)

    def _spans_of(self, job: Waiting, now_ns: int) -> JobSpans:
        spans = self.open.get(job.job_id)
        if spans is None:
            queue = self.topology.job_queue(job.job_class)
            validated = self.validated.pop(job.job_id, None)
            spans = self.open[job.job_id] = JobSpans.open(job, queue, validated, now_ns)
        return spans

    def run_started(
        self, job: Waiting, started_at: datetime, attributes: dict[str, Any], now_ns: int
    ) -> None:
        """A run of `job` began at `started_at` (the `job.started` event's time)."""
        self._spans_of(job, now_ns).run_started(ns(started_at), attributes)

    def run_ended(self, job_id: str, at: datetime, outcome: str) -> None:
        """A run of `job_id` ended at `at` and the job waits again."""
        spans = self.open.get(job_id)
        if spans is not None:
            spans.run_ended(ns(at), outcome)

    @contextmanager
    def sending(
        self, result: JobResult, reply_to: str | None, job: Waiting | None, now_ns: int
    ) -> Iterator[dict[str, Any]]:
        """Around the publish of `result` to `reply_to`: the headers to send it with (its
        ``send`` span's context); the job's spans end after it. A job this owner never ran gets
        its `process` span now, when `job` is given (else only what is open is closed)."""
        spans = self.open.pop(result.job_id, None)
        if spans is None and job is not None:
            spans = JobSpans.open(job, self.topology.job_queue(job.job_class), None, now_ns)
        if spans is None:
            yield {}
            return
        send_ns = spans.ending(result)
        headers: dict[str, Any] = {}
        send = None
        if reply_to:
            template = self.topology.reply_queue_template
            send = tracer().start_span(
                span_name("send", reply_to, template),
                context=set_span_in_context(spans.process),
                kind=SpanKind.PRODUCER,
                start_time=send_ns,
                attributes=messaging_attributes("send", reply_to, result.job_id, template=template)
                | {"qsched.state": result.state.value},
            )
            inject(headers, set_span_in_context(send))
        try:
            yield headers
        except Exception as exc:
            if send is not None:
                send.set_status(Status(StatusCode.ERROR, f"reply not sent: {exc}"))
            raise
        finally:
            if send is not None:
                send.end()
            spans.close(result)

    def abandon(self, reason: str) -> None:
        """End every open span as failed (the owner lost the broker or the lease)."""
        for spans in self.open.values():
            spans.abandon(reason)
        self.open.clear()
