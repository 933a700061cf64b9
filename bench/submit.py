"""Submission throughput with publisher confirms, against raw pika in the same run.

Measured, for a ~1 KiB job and a ~5 KiB job (a real Pulser abstract representation):

- `QPUClient.submit`, one job at a time (each waits for its confirm);
- `QPUClient.submit_many` (confirms awaited per window of 1000);
- 4 MPI ranks, each with its own client and `submit_many`;
- baseline: pika's SelectConnection publishing the same bodies, persistent, to the same kind of
  queue (priority, dead-lettering), keeping up to 1000 confirms outstanding.

No owner runs: this is the broker-side cost of getting jobs in. Target: `submit_many` at least
half the raw rate. Every measurement writes into a fresh namespace (its own, empty queue), after a
warm-up of `WARMUP` messages on the same connection; each figure is taken `samples` times, the
four ways in a rotating order, and reported as median [min..max]. kombu's own ``confirm_publish`` waits for every confirm in turn and cannot
batch, which is why the client tracks confirms on py-amqp's ack callbacks instead.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pika

from bench.common import bench_namespace, child_env, delete_queues, discover, summary
from brokers.settings import Settings
from brokers.topology import build_topology
from producers.client import QPUClient
from schemas.codec import encode
from schemas.messages import JobRequest
from schemas.policy import Policy
from tests.sequences import analog_sequence

WINDOW = 1000
WARMUP = 200


def job_of_size(target_bytes: int) -> str:
    """A JSON object sequence whose encoded job is about `target_bytes` (for the 1 KiB case)."""
    base = len(encode(JobRequest(job_class="production", shots=100, sequence="{}")))
    return json.dumps({"pad": "x" * max(0, target_bytes - base - 12)})


def raw_pika_rate(url: str, queue: str, body: bytes, count: int) -> float:
    """Messages/s for pika SelectConnection with up to `WINDOW` unconfirmed publishes.

    The first `WARMUP` confirmed messages are not timed.
    """
    total = count + WARMUP
    state = {"sent": 0, "acked": 0, "started": 0.0, "ended": 0.0}

    def on_open(connection: pika.SelectConnection) -> None:
        connection.channel(on_open_callback=on_channel)

    def on_channel(channel: pika.channel.Channel) -> None:
        channel.confirm_delivery(lambda frame: on_ack(channel, frame))
        publish(channel)

    def publish(channel: pika.channel.Channel) -> None:
        props = pika.BasicProperties(
            delivery_mode=2, content_type="application/x-msgpack", priority=1
        )
        while state["sent"] < total and state["sent"] - state["acked"] < WINDOW:
            channel.basic_publish("", queue, body, props)
            state["sent"] += 1

    def on_ack(channel: pika.channel.Channel, frame: pika.frame.Method) -> None:
        tag, multiple = frame.method.delivery_tag, frame.method.multiple
        state["acked"] = tag if multiple else state["acked"] + 1
        if not state["started"] and state["acked"] >= WARMUP:
            state["started"], state["base"] = time.perf_counter(), state["acked"]
        if state["acked"] >= total:
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
    return (total - state["base"]) / (state["ended"] - state["started"])


def _client(settings: Settings, sequence: str) -> QPUClient:
    client = QPUClient(settings=settings, validate_locally=False)
    client.submit_many([client.build_job(sequence, 100) for _ in range(WARMUP)])  # warm-up
    return client


def _close(client: QPUClient) -> None:
    client.close()
    delete_queues(client.settings.amqp_url, [client.reply_queue_name])


def submit_rate(settings: Settings, sequence: str, count: int) -> float:
    """Jobs/s of `QPUClient.submit`, one job at a time (each waits for its confirm)."""
    client = _client(settings, sequence)
    single = max(count // 5, 200)
    started = time.perf_counter()
    for _ in range(single):
        client.submit(sequence, 100)
    elapsed = time.perf_counter() - started
    _close(client)
    return single / elapsed


def submit_many_rate(settings: Settings, sequence: str, count: int) -> float:
    """Jobs/s of `QPUClient.submit_many` (confirms awaited per window)."""
    client = _client(settings, sequence)
    jobs = [client.build_job(sequence, 100) for _ in range(count)]
    started = time.perf_counter()
    client.submit_many(jobs)
    elapsed = time.perf_counter() - started
    _close(client)
    return count / elapsed


def mpi_rate(settings: Settings, sequence_file: Path, count: int, ranks: int = 4) -> float:
    """Aggregate jobs/s of `ranks` MPI ranks, each with its own client and submit_many.

    The ranks get a clean environment (`child_env`) and delete their reply queues.
    """
    mpiexec = str(Path(sys.executable).with_name("mpiexec"))
    args = [mpiexec, "-n", str(ranks), sys.executable, "-m", "bench.submit_rank"]
    done = subprocess.run(
        [*args, str(sequence_file), str(count // ranks), str(WARMUP // ranks)],
        env=child_env(settings),
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
        start_new_session=True,
    )
    return float(done.stdout.strip().splitlines()[-1])


def measure_size(
    url: str, sequence: str, count: int, samples: int, seq_file: Path
) -> dict[str, list[float]]:
    """Rates of the four ways for one job size; each measurement on a fresh namespace."""
    body = encode(JobRequest(job_class="production", shots=100, sequence=sequence))
    seq_file.write_text(sequence)
    rates: dict[str, list[float]] = {"raw": [], "one": [], "many": [], "mpi": []}

    def raw(settings: Settings) -> float:
        queue = build_topology(settings, Policy()).job_queue("production")
        return raw_pika_rate(url, queue, body, count)

    ways: list[tuple[str, Callable[[Settings], float]]] = [
        ("raw", raw),
        ("one", lambda s: submit_rate(s, sequence, count)),
        ("many", lambda s: submit_many_rate(s, sequence, count)),
        ("mpi", lambda s: mpi_rate(s, seq_file, count)),
    ]
    for sample in range(samples):
        for name, measure in ways[sample % 4 :] + ways[: sample % 4]:
            with bench_namespace(url) as settings:
                rates[name].append(measure(settings))
    return rates


def main(jobs: int, samples: int = 3) -> None:
    """Print jobs/s of each way of submitting next to the raw pika rate, as ratios."""
    count = max(jobs, 1000)
    print(f"submit benchmark, {count} persistent jobs per measurement, confirms on")
    print("  figures: median [min..max] over samples; each measurement on a fresh queue")
    with discover() as handle, tempfile.TemporaryDirectory() as tmp:
        for label, sequence in (("1 KiB", job_of_size(1024)), ("5 KiB", analog_sequence(6))):
            size = len(encode(JobRequest(job_class="production", shots=100, sequence=sequence)))
            rates = measure_size(handle.url, sequence, count, samples, Path(tmp) / "seq.json")
            base = statistics.median(rates["raw"])
            print(f"  {label} job ({size} bytes encoded), jobs/s and ratio of medians")
            for name, text in (
                ("raw", "raw pika, 1000 confirms in flight"),
                ("one", "QPUClient.submit (one by one)    "),
                ("many", "QPUClient.submit_many            "),
                ("mpi", "4 MPI ranks, submit_many each    "),
            ):
                ratio = statistics.median(rates[name]) / base
                print(f"    {text} {summary(rates[name])}  {ratio:4.2f}x")
