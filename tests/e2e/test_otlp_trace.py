"""One trace per job in a real collector (rotel, written in Rust) over both OTLP transports,
configured only by the standard variables: the owner exports over gRPC, `qsched submit` over
HTTP, two MPI ranks over gRPC by the per-signal override of an HTTP default. Every job's trace
has one root, no orphan, no span starting before its parent; an unreachable endpoint is one
warning at start and the lost spans are counted at exit (the collector stopped, same owner)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import OwnerHarness
from tests.e2e.collector import Rotel
from tests.support.owners import QSCHED
from tests.support.sequences import analog_sequence
from tests.support.traces import Span, by_trace, one, trace_problems

pytestmark = pytest.mark.e2e
EXAMPLE = Path(__file__).parents[2] / "examples" / "mpi_sweep.py"
MPIEXEC = str(Path(sys.executable).with_name("mpiexec"))
SWEEP = ("--shots", "20", "--jobs-per-rank", "1", "--mode", "rank", "--json")


def _env(owners: OwnerHarness, otel: dict[str, str]) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "QSCHED_", "OTEL_"))}
    return (
        keep
        | {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_BSP_SCHEDULE_DELAY": "200"}
        | otel
        | {
            "QSCHED_AMQP_URL": owners.broker.url,
            "QSCHED_NAMESPACE": owners.broker.topology.namespace,
        }
    )


def _submit(env: dict[str, str], sequence: Path) -> subprocess.CompletedProcess[str]:
    command = [QSCHED, "submit", str(sequence), "--shots", "20", "--class", "production"]
    return subprocess.run(
        [*command, "--wait", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _job_trace(spans: list[Span], job_id: str) -> list[Span] | None:
    traces = {s.trace_id for s in spans if s.attributes.get("messaging.message.id") == job_id}
    if len(traces) != 1:
        return None
    (trace_id,) = traces
    return by_trace(spans)[trace_id]


def _complete(spans: list[Span], job_id: str) -> bool:
    job_trace = _job_trace(spans, job_id)
    if job_trace is None:
        return False
    kinds = [(s.kind, s.name.split(" ")[0]) for s in job_trace]
    return {("PRODUCER", "send"), ("CONSUMER", "process"), ("CONSUMER", "receive")} <= set(
        kinds
    ) and kinds.count(("PRODUCER", "send")) == 2


@pytest.mark.slow  # long and rarely broken: the slow tier (CI runs it)
@pytest.mark.timeout(300)  # four CLI processes and two MPI ranks: ~90 s here, more when loaded
def test_every_job_is_one_ordered_trace_in_rotel_over_grpc_and_http(
    owners: OwnerHarness, tmp_path: Path
) -> None:
    sequence = tmp_path / "seq.json"
    sequence.write_text(analog_sequence(2))
    with Rotel(tmp_path) as rotel:
        grpc = {
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            "OTEL_EXPORTER_OTLP_ENDPOINT": rotel.grpc_endpoint,
        }
        owners.start("--backend", "synthetic", env=_env(owners, grpc))
        http = {
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_ENDPOINT": rotel.http_endpoint,
        }
        submitted = _submit(_env(owners, http), sequence)
        assert submitted.returncode == 0, submitted.stderr[-2000:]
        assert "tracing:" not in submitted.stderr  # a reachable endpoint: not a word
        cli_job = json.loads(submitted.stdout)["job_id"]
        ranks_env = _env(
            owners,
            http
            | {
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": rotel.grpc_endpoint,
            },
        )
        swept = subprocess.run(
            [MPIEXEC, "-n", "2", sys.executable, str(EXAMPLE), *SWEEP],
            env=ranks_env,
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
        rotel.wait_for(
            lambda spans: all(_complete(spans, j) for j in jobs), 60, "complete trace of every job"
        )
        spans = rotel.spans()
        (tmp_path / "rotel-printed.txt").write_text(rotel.text())

    namespace = owners.broker.topology.namespace
    publishers = set()
    for job_id in jobs:
        job_trace = _job_trace(spans, job_id)
        assert job_trace is not None
        assert trace_problems(job_trace) == [], job_id  # one root, no orphans, parents first
        send = one(job_trace, kind="PRODUCER", name=f"send {namespace}.jobs")
        process = one(job_trace, kind="CONSUMER", parent_id=send.span_id)
        assert process.service == "qsched-owner"  # came over gRPC
        job_class = send.attributes["messaging.rabbitmq.destination.routing_key"]
        assert process.name == f"process {namespace}.jobs.{job_class}"
        reply = f"{namespace}.reply.{{user}}.{{client_id}}"
        result_send = one(job_trace, kind="PRODUCER", name=f"send {reply}")
        receive = one(job_trace, kind="CONSUMER", name=f"receive {reply}")
        assert receive.parent_id == result_send.span_id and receive.service == send.service
        assert {s.service for s in job_trace} == {send.service, "qsched-owner"}
        publishers.add(send.service)
        if job_id == cli_job:  # the log names the trace too (one job: the same code for all)
            history = subprocess.run(
                [QSCHED, "history", job_id, "--json"],
                env=_env(owners, {"OTEL_TRACES_EXPORTER": "none"}),
                capture_output=True,
                text=True,
                check=False,
            )
            assert history.returncode == 0, history.stderr[-2000:]
            assert json.loads(history.stdout)["trace_id"] == send.trace_id
    # qsched-client came over HTTP, the ranks over gRPC (the per-signal override won)
    assert publishers == {"qsched-client", "qsched-mpi-rank0", "qsched-mpi-rank1"}

    # The collector is gone: a submit still works, says so once at start, and counts the loss.
    closed = rotel.grpc_endpoint
    env = _env(
        owners, {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": closed}
    )
    submitted = _submit(env, sequence)
    assert submitted.returncode == 0, submitted.stderr[-2000:]  # tracing never fails a submit
    said = [line for line in submitted.stderr.splitlines() if "tracing:" in line]
    assert len(said) == 2, submitted.stderr
    assert f"OTLP endpoint grpc {closed} cannot be reached" in said[0]
    assert said[1].endswith(f"spans in all were not exported to OTLP endpoint grpc {closed}")
