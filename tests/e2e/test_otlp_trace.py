"""One trace per job, proven across processes: the owner, a `qsched submit` and two MPI ranks
export over OTLP/HTTP (protobuf) to a receiver this test runs, configured only by `OTEL_*`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import OwnerHarness
from tests.otlp_receiver import OTLPReceiver, ReceivedSpan
from tests.owners import QSCHED
from tests.sequences import analog_sequence

pytestmark = pytest.mark.e2e
EXAMPLE = Path(__file__).parents[2] / "examples" / "mpi_sweep.py"
MPIEXEC = str(Path(sys.executable).with_name("mpiexec"))
OWNER_CHILDREN = {"queue wait", "validate", "execute", "publish result"}


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    """An OTLP/HTTP receiver on a free loopback port."""
    with OTLPReceiver() as running:
        yield running


def _otel(receiver: OTLPReceiver) -> dict[str, str]:
    return {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }


def _client_env(owners: OwnerHarness, receiver: OTLPReceiver) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "QSCHED_", "OTEL_"))}
    return (
        keep
        | _otel(receiver)
        | {
            "QSCHED_AMQP_URL": owners.broker.url,
            "QSCHED_NAMESPACE": owners.broker.topology.namespace,
        }
    )


def _job_spans(spans: list[ReceivedSpan], job_id: str) -> dict[str, list[ReceivedSpan]]:
    """The spans that name `job_id`, by role, and the owner's children of its process span."""
    mine = [s for s in spans if s.attributes.get("messaging.message.id") == job_id]
    roles: dict[str, list[ReceivedSpan]] = {
        "publish": [s for s in mine if s.kind == "SPAN_KIND_PRODUCER"],
        "process": [s for s in mine if s.name.endswith(" process")],
        "receive": [s for s in mine if s.name.endswith(" receive")],
    }
    process_ids = {s.span_id for s in roles["process"]}
    roles["children"] = [s for s in spans if s.parent_span_id in process_ids]
    return roles


def _complete(spans: list[ReceivedSpan], job_ids: list[str]) -> bool:
    for job_id in job_ids:
        roles = _job_spans(spans, job_id)
        if not (roles["publish"] and roles["process"] and roles["receive"]):
            return False
        if not {c.name for c in roles["children"]} >= OWNER_CHILDREN:
            return False
    return True


def test_each_job_from_the_cli_and_from_mpi_ranks_is_one_trace_with_linked_spans(
    owners: OwnerHarness, receiver: OTLPReceiver, tmp_path: Path
) -> None:
    owners.start("--backend", "synthetic", env=_otel(receiver))
    env = _client_env(owners, receiver)
    sequence = tmp_path / "seq.json"
    sequence.write_text(analog_sequence(2))
    submitted = subprocess.run(
        [
            QSCHED,
            "submit",
            str(sequence),
            "--shots",
            "20",
            "--class",
            "production",
            "--wait",
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert submitted.returncode == 0, submitted.stderr[-2000:]
    cli_job = json.loads(submitted.stdout)["job_id"]
    swept = subprocess.run(
        [
            MPIEXEC,
            "-n",
            "2",
            sys.executable,
            str(EXAMPLE),
            "--shots",
            "20",
            "--jobs-per-rank",
            "1",
            "--mode",
            "rank",
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert swept.returncode == 0, swept.stderr[-2000:]
    mpi_jobs = [
        json.loads(line)["job_id"] for line in swept.stdout.splitlines() if line.startswith("{")
    ]
    assert len(mpi_jobs) == 2
    jobs = [cli_job, *mpi_jobs]
    receiver.wait_for(lambda spans: _complete(spans, jobs), 60, "complete trace for every job")

    namespace = owners.broker.topology.namespace
    publishers = set()
    for job_id in jobs:
        roles = _job_spans(receiver.spans, job_id)
        (publish,), (process,), (receive,) = roles["publish"], roles["process"], roles["receive"]
        every = [publish, process, receive, *roles["children"]]
        assert {s.trace_id for s in every} == {publish.trace_id}, f"{job_id} spans several traces"
        assert process.parent_span_id == publish.span_id  # the owner continues the client's span
        assert receive.parent_span_id == publish.span_id  # the receipt closes the same trace
        assert {c.name for c in roles["children"]} >= OWNER_CHILDREN
        assert process.service == "qsched-owner" and process.kind == "SPAN_KIND_CONSUMER"
        assert receive.kind == "SPAN_KIND_CONSUMER" and receive.service == publish.service
        publishers.add(publish.service)
        for span, operation in ((publish, "publish"), (process, "process"), (receive, "receive")):
            assert span.attributes["messaging.system"] == "rabbitmq"
            assert span.attributes["messaging.operation.type"] == operation
            assert span.attributes["messaging.message.id"] == job_id
        job_class = publish.attributes["messaging.rabbitmq.destination.routing_key"]
        assert publish.attributes["messaging.destination.name"] == f"{namespace}.jobs"
        assert process.attributes["messaging.destination.name"] == f"{namespace}.jobs.{job_class}"
        assert str(receive.attributes["messaging.destination.name"]).startswith(
            f"{namespace}.reply."
        )
        history = subprocess.run(
            [QSCHED, "history", job_id, "--json"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert history.returncode == 0, history.stderr[-2000:]
        assert json.loads(history.stdout)["trace_id"] == publish.trace_id  # the log names it too
    assert publishers == {"qsched-client", "qsched-mpi-rank0", "qsched-mpi-rank1"}
