"""Submission throughput with publisher confirms, against raw pika in the same run.

Measured, for a ~1 KiB job and a ~5 KiB job (a real Pulser abstract representation):

- `QPUClient.submit`, one job at a time (each waits for its confirm);
- `QPUClient.submit_many` (confirms awaited per window of 1000);
- 4 MPI ranks, each with its own client and `submit_many`;
- baseline: pika's SelectConnection publishing the same bodies, persistent, to the same kind of
  queue (priority, dead-lettering), keeping up to 1000 confirms outstanding.

No owner runs: this is the broker-side cost of getting jobs in. Target: `submit_many` at least
half the raw rate. kombu's own ``confirm_publish`` waits for every confirm in turn and cannot
batch, which is why the client tracks confirms on py-amqp's ack callbacks instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pika

from bench.common import bench_namespace
from brokers.topology import build_topology
from producers.client import QPUClient
from schemas.codec import encode
from schemas.messages import JobRequest
from schemas.policy import Policy
from tests.sequences import analog_sequence

WINDOW = 1000


def job_of_size(target_bytes: int) -> str:
    """A JSON object sequence whose encoded job is about `target_bytes` (for the 1 KiB case)."""
    base = len(encode(JobRequest(job_class="production", shots=100, sequence="{}")))
    return json.dumps({"pad": "x" * max(0, target_bytes - base - 12)})


def raw_pika_rate(url: str, queue: str, body: bytes, count: int) -> float:
    """Messages/s for pika SelectConnection with up to `WINDOW` unconfirmed publishes."""
    state = {"sent": 0, "acked": 0, "started": 0.0, "ended": 0.0}

    def on_open(connection: pika.SelectConnection) -> None:
        connection.channel(on_open_callback=on_channel)

    def on_channel(channel: pika.channel.Channel) -> None:
        channel.confirm_delivery(lambda frame: on_ack(channel, frame))
        state["started"] = time.perf_counter()
        publish(channel)

    def publish(channel: pika.channel.Channel) -> None:
        props = pika.BasicProperties(
            delivery_mode=2, content_type="application/x-msgpack", priority=1
        )
        while state["sent"] < count and state["sent"] - state["acked"] < WINDOW:
            channel.basic_publish("", queue, body, props)
            state["sent"] += 1

    def on_ack(channel: pika.channel.Channel, frame: pika.frame.Method) -> None:
        tag, multiple = frame.method.delivery_tag, frame.method.multiple
        state["acked"] = tag if multiple else state["acked"] + 1
        if state["acked"] >= count:
            state["ended"] = time.perf_counter()
            channel.connection.close()
        else:
            publish(channel)

    connection = pika.SelectConnection(
        pika.URLParameters(url),
        on_open_callback=on_open,
        on_close_callback=lambda conn, reason: conn.ioloop.stop(),
    )
    connection.ioloop.start()
    return count / (state["ended"] - state["started"])


def client_rates(settings: object, sequence: str, count: int) -> tuple[float, float]:
    """(submit, submit_many) jobs/s for one client."""
    client = QPUClient(settings=settings, validate_locally=False)  # type: ignore[arg-type]
    single = max(count // 5, 200)
    started = time.perf_counter()
    for _ in range(single):
        client.submit(sequence, 100)
    one_by_one = single / (time.perf_counter() - started)
    jobs = [client.build_job(sequence, 100) for _ in range(count)]
    started = time.perf_counter()
    client.submit_many(jobs)
    many = count / (time.perf_counter() - started)
    client.close()
    return one_by_one, many


def mpi_rate(settings: object, sequence_file: Path, count: int, ranks: int = 4) -> float:
    """Aggregate jobs/s of `ranks` MPI ranks, each with its own client and submit_many."""
    env = dict(os.environ) | {
        "QSCHED_AMQP_URL": settings.amqp_url,
        "QSCHED_NAMESPACE": settings.namespace,
    }  # type: ignore[attr-defined]
    mpiexec = str(Path(sys.executable).with_name("mpiexec"))
    done = subprocess.run(
        [
            mpiexec,
            "-n",
            str(ranks),
            sys.executable,
            "-m",
            "bench.submit_rank",
            str(sequence_file),
            str(count // ranks),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return float(done.stdout.strip().splitlines()[-1])


def main(jobs: int) -> None:
    """Print jobs/s of each way of submitting next to the raw pika rate, as ratios."""
    count = max(jobs, 1000)
    print(f"submit benchmark, {count} persistent jobs per measurement, confirms on")
    with bench_namespace() as settings:
        topology = build_topology(settings, Policy())
        queue = topology.job_queue("production")
        for label, sequence in (("1 KiB", job_of_size(1024)), ("5 KiB", analog_sequence(6))):
            body = encode(JobRequest(job_class="production", shots=100, sequence=sequence))
            raw = raw_pika_rate(settings.amqp_url, queue, body, count)
            one, many = client_rates(settings, sequence, count)
            seq_file = Path(f"/tmp/qsched-bench-{os.getpid()}.json")
            seq_file.write_text(sequence)
            mpi = mpi_rate(settings, seq_file, count)
            seq_file.unlink()
            print(f"  {label} job ({len(body)} bytes encoded)")
            print(f"    raw pika, 1000 confirms in flight  {raw:9.0f} msg/s   1.00x")
            print(f"    QPUClient.submit (one by one)      {one:9.0f} jobs/s  {one / raw:4.2f}x")
            print(f"    QPUClient.submit_many              {many:9.0f} jobs/s  {many / raw:4.2f}x")
            print(f"    4 MPI ranks, submit_many each      {mpi:9.0f} jobs/s  {mpi / raw:4.2f}x")
