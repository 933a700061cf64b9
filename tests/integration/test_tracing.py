"""One trace per job, named and ordered by the messaging conventions: the client's ``send``, the
owner's ``process`` with its children (a wait and a run per run, the result's ``send``), the
client's ``receive``; a preempted job's runs all in one trace, a canceled one marked failed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from schemas import JobState
from tests.conftest import OwnerHarness
from tests.support.owners import wait_running
from tests.support.sequences import analog_sequence
from tests.support.traces import (
    Span,
    by_trace,
    children_of,
    from_console,
    from_sdk,
    one,
    trace_problems,
)
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration
_EXPORTER = InMemorySpanExporter()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """The test process's spans (the global provider can be set once per process)."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        trace.set_tracer_provider(provider)
    _EXPORTER.clear()
    yield _EXPORTER


def _owner_spans(trace_file: Path) -> list[Span]:
    return from_console(trace_file.read_text().splitlines()) if trace_file.exists() else []


def test_each_job_is_one_ordered_trace_named_by_the_messaging_conventions(
    owners: OwnerHarness, spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    """Given a development job preempted by a production one and a third job canceled while it
    waits, each job is one trace with one root, no orphan and no span starting before its
    parent; the preempted job's two runs are two `execute` spans under one `process`, and the
    canceled job's `process` and `receive` carry ERROR status and its error code."""
    trace_file = tmp_path / "owner-spans.jsonl"
    owners.start(
        "--backend",
        "synthetic",
        "--shot-rate",
        "400",
        env={"OTEL_TRACES_EXPORTER": "console", "QSCHED_TRACE_FILE": str(trace_file)},
    )
    client = owners.client()
    namespace = owners.broker.topology.namespace
    dev = client.submit(analog_sequence(2), 1200, job_class="development")  # ~3 s
    wait_running(client, dev.job_id)
    waiting = client.submit(analog_sequence(2), 20, job_class="development")
    waiting.cancel()
    prod = client.submit(analog_sequence(2), 20, job_class="production")  # preempts dev
    results = {h.job_id: h.result(timeout=60) for h in (dev, waiting, prod)}
    assert results[dev.job_id].preemptions == 1 and results[dev.job_id].state is JobState.DONE
    assert results[waiting.job_id].state is JobState.CANCELED
    # The owner's spans of a job end once its result is confirmed, maybe after the client got it.
    jobs = [dev.job_id, waiting.job_id, prod.job_id]
    wait_until(
        lambda: sum(s.name.startswith("process ") for s in _owner_spans(trace_file)) >= 3,
        "the owner's process spans of the three jobs",
        timeout_s=30,
        step=lambda: time.sleep(0.1),
    )
    traces = by_trace(from_sdk(spans.get_finished_spans()) + _owner_spans(trace_file))
    assert len(traces) == 3  # one trace per job, nothing else
    for job_id in jobs:
        (job_trace,) = [t for t in traces.values() if any(_names(s, job_id) for s in t)]
        assert trace_problems(job_trace) == [], job_id
        send = one(job_trace, kind="PRODUCER", name=f"send {namespace}.jobs")
        assert not send.parent_id  # the root
        assert send.attributes["messaging.operation.type"] == "send"
        process = one(job_trace, kind="CONSUMER", parent_id=send.span_id)
        job_class = results[job_id].job_class
        assert process.name == f"process {namespace}.jobs.{job_class}"
        assert process.attributes["messaging.operation.type"] == "process"
        result_send = one(job_trace, kind="PRODUCER", parent_id=process.span_id)
        assert result_send.name == f"send {namespace}.reply.{{user}}.{{client_id}}"
        assert result_send.attributes["messaging.destination.name"] == client.reply_queue_name
        receive = one(job_trace, kind="CONSUMER", parent_id=result_send.span_id)
        assert receive.name == f"receive {namespace}.reply.{{user}}.{{client_id}}"
        assert receive.attributes["messaging.operation.type"] == "receive"
        assert all(client.client_id not in s.name for s in job_trace)  # no per-client name

    dev_trace = next(t for t in traces.values() if any(_names(s, dev.job_id) for s in t))
    dev_process = one(dev_trace, kind="CONSUMER", name=f"process {namespace}.jobs.development")
    steps = [
        (s.name, s.attributes.get("qsched.run.outcome"))
        for s in children_of(dev_trace, dev_process)
    ]
    assert [n for n, _ in steps if n != "validate"] == [
        "queue wait",
        "execute",
        "queue wait",
        "execute",
        f"send {namespace}.reply.{{user}}.{{client_id}}",
    ]
    assert [o for n, o in steps if n == "execute"] == ["preempted", "DONE"]
    assert dev_process.status == "UNSET" and dev_process.attributes["qsched.runs"] == 2

    canceled = next(t for t in traces.values() if any(_names(s, waiting.job_id) for s in t))
    canceled_process = one(canceled, kind="CONSUMER", name=f"process {namespace}.jobs.development")
    assert [s.name for s in children_of(canceled, canceled_process) if s.name != "validate"] == [
        "queue wait",
        f"send {namespace}.reply.{{user}}.{{client_id}}",
    ]
    error = results[waiting.job_id].error
    assert error is not None
    for span in (
        canceled_process,
        one(canceled, name=f"receive {namespace}.reply.{{user}}.{{client_id}}"),
    ):
        assert span.status == "ERROR" and "CANCELED" in span.status_message
        assert span.attributes["error.type"] == error.code.value


def _names(span: Span, job_id: str) -> bool:
    return span.attributes.get("messaging.message.id") == job_id
