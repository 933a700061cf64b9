"""One trace per job: the client's producer span, the owner's consumer span and its children."""

from __future__ import annotations

import json
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
from tests.sequences import analog_sequence

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


def test_producer_owner_and_receipt_spans_share_one_trace_per_job(
    owners: OwnerHarness, spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    trace_file = tmp_path / "owner-spans.jsonl"
    owners.start(
        "--backend",
        "synthetic",
        env={"OTEL_TRACES_EXPORTER": "console", "QSCHED_TRACE_FILE": str(trace_file)},
    )
    client = owners.client()
    handles = [client.submit(analog_sequence(2), 20, job_class="production") for _ in range(2)]
    assert all(h.result(timeout=30).state is JobState.DONE for h in handles)
    producer = [s for s in spans.get_finished_spans() if s.kind is trace.SpanKind.PRODUCER]
    assert len(producer) == 2
    assert len({p.context.trace_id for p in producer}) == 2  # one trace per job
    receipts = [s for s in spans.get_finished_spans() if s.name.endswith(" receive")]
    assert len(receipts) == 2  # the client recorded receiving each result, in that job's trace
    assert {r.context.trace_id for r in receipts} == {p.context.trace_id for p in producer}
    # The owner ends its "publish result" span once the broker confirmed the result, which may be
    # after the client already has it: wait for the owner's file to hold both jobs' spans.
    deadline = time.monotonic() + 30
    while True:
        owner_spans = [
            json.loads(line) for line in trace_file.read_text().splitlines() if line.strip()
        ]
        if sum(s["name"] == "publish result" for s in owner_spans) >= 2:
            break
        assert time.monotonic() < deadline, "the owner never exported its publish-result spans"
        time.sleep(0.1)  # re-reads the file; the deadline above bounds it
    for p in producer:
        trace_id = f"0x{p.context.trace_id:032x}"
        in_trace = [s for s in owner_spans if s["context"]["trace_id"] == trace_id]
        names = {s["name"] for s in in_trace}
        assert {"queue wait", "validate", "execute", "publish result"} <= names
        consumer = next(s for s in in_trace if s["kind"] == "SpanKind.CONSUMER")
        assert consumer["parent_id"] == f"0x{p.context.span_id:016x}"
        assert consumer["attributes"]["messaging.system"] == "rabbitmq"
        assert consumer["attributes"]["qsched.shots"] == 20
        assert consumer["attributes"]["qsched.backend"] == "synthetic"
        children = [s for s in in_trace if s["parent_id"] == consumer["context"]["span_id"]]
        assert {c["name"] for c in children} >= {
            "queue wait",
            "validate",
            "execute",
            "publish result",
        }
