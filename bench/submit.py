"""Submission throughput with publisher confirms, against raw pika in the same run.

Measured, for a ~1 KiB job and a ~20 KiB job, each next to its own raw baseline:

- `QPUClient.submit_many` (up to 1000 confirms in flight, refilled as acks arrive) against pika's
  SelectConnection publishing the same bodies, persistent, to the same kind of queue (priority,
  dead-lettering), keeping up to 1000 confirms outstanding (``raw``);
- `QPUClient.submit`, one job at a time, against pika's BlockingConnection waiting for each
  confirm in turn (``raw1``);
- 4 MPI ranks, each with its own client and `submit_many`, against 4 processes each running the
  windowed raw publisher at once (``rawN``; aggregate rate from the first start to the last end).

No owner runs: this is the broker-side cost of getting jobs in. The clients are built with
``validate_locally=False``: the Pulser check of each sequence against the device, which a real
submitter pays before publishing (milliseconds per job), is not in these figures; the run says
so in its first line and its JSON. Goals: each way >= 0.8x its raw
baseline. Every measurement writes into a fresh namespace (its own, empty queue), after a
warm-up of `WARMUP` messages on the same connection; each figure is taken `samples` times, the
four ways in a rotating order, and reported as median [min..max]. kombu's own ``confirm_publish`` waits for every confirm in turn and cannot
batch, which is why the client tracks confirms on py-amqp's ack callbacks instead.
"""

from __future__ import annotations

import json
import multiprocessing
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pika

from bench.common import bench_namespace, child_env, delete_queues, discover, summary
from brokers.settings import Settings
from brokers.topology import build_topology
from producers.client import QPUClient
from schemas.codec import encode
from schemas.jobs import JobRequest
from schemas.policy import Policy

WINDOW = 1000
WARMUP = 200
RANKS = 4
SIZES_BYTES = {"1 KiB": 1024, "20 KiB": 20 * 1024}


def job_of_size(target_bytes: int) -> str:
    """A JSON object sequence whose encoded job is about `target_bytes` (for the 1 KiB case)."""
    base = len(encode(JobRequest(job_class="production", shots=100, sequence="{}")))
    return json.dumps({"pad": "x" * max(0, target_bytes - base - 12)})


def raw_pika_rate(url: str, queue: str, body: bytes, count: int) -> float:
    """Messages/s for pika SelectConnection with up to `WINDOW` unconfirmed publishes.

    The first `WARMUP` confirmed messages are not timed.
    """
    messages, started, ended = raw_pika_span(url, queue, body, count)
    return messages / (ended - started)


def raw_pika_span(
    url: str, queue: str, body: bytes, count: int, warm: Callable[[], None] | None = None
) -> tuple[int, float, float]:
    """(messages timed, monotonic start, monotonic end) of the windowed raw publisher; `warm`
    is called once the warm-up is confirmed, before the clock starts (a barrier)."""
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
        # The warm-up is published and confirmed alone: nothing timed is in flight before the clock.
        limit = total if state["started"] else WARMUP
        while state["sent"] < limit and state["sent"] - state["acked"] < WINDOW:
            channel.basic_publish("", queue, body, props)
            state["sent"] += 1

    def on_ack(channel: pika.channel.Channel, frame: pika.frame.Method) -> None:
        tag, multiple = frame.method.delivery_tag, frame.method.multiple
        state["acked"] = tag if multiple else state["acked"] + 1
        if not state["started"] and state["acked"] >= WARMUP:
            if warm is not None:
                warm()
            state["started"], state["base"] = time.monotonic(), state["acked"]
        if state["acked"] >= total:
            state["ended"] = time.monotonic()
            channel.connection.close()
        else:
            publish(channel)

    connection = pika.SelectConnection(
        pika.URLParameters(url),
        on_open_callback=on_open,
        on_close_callback=lambda conn, reason: conn.ioloop.stop(),
    )
    connection.ioloop.start()
    return int(total - state["base"]), state["started"], state["ended"]


def raw_confirm_each_rate(url: str, queue: str, body: bytes, count: int) -> float:
    """Messages/s for pika BlockingConnection publishing one message at a time, each confirmed
    before the next (after `WARMUP` untimed ones)."""
    from brokers.connection import connect

    connection = connect(url, name="bench-raw-each")
    channel = connection.channel()
    channel.confirm_delivery()
    props = pika.BasicProperties(delivery_mode=2, content_type="application/x-msgpack", priority=1)
    for _ in range(WARMUP):
        channel.basic_publish("", queue, body, props)
    single = max(count // 5, 200)
    started = time.perf_counter()
    for _ in range(single):
        channel.basic_publish("", queue, body, props)
    elapsed = time.perf_counter() - started
    connection.close()
    return single / elapsed


def raw_confirm_latencies_s(url: str, body: bytes, count: int) -> list[float]:
    """Seconds from publish to confirm for `count` messages published one at a time with pika's
    BlockingConnection to a fresh queue of its own (after `WARMUP` untimed ones)."""
    from brokers.connection import connect

    connection = connect(url, name="bench-raw-latency")
    channel = connection.channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.confirm_delivery()
    props = pika.BasicProperties(delivery_mode=2, content_type="application/x-msgpack", priority=1)
    times = []
    for i in range(WARMUP + count):
        started = time.perf_counter()
        channel.basic_publish("", queue, body, props)
        if i >= WARMUP:
            times.append(time.perf_counter() - started)
    connection.close()
    return times


def _raw_worker(
    args: tuple[str, str, bytes, int], barrier: Any, out: Any
) -> None:  # pragma: no cover - runs in a child process
    out.put(raw_pika_span(*args, warm=barrier.wait))


def raw_parallel_rate(url: str, queue: str, body: bytes, count: int, publishers: int) -> float:
    """Aggregate messages/s of `publishers` processes running the windowed raw publisher at once
    (`count` messages over all of them), all warmed up and released together by a barrier, from
    the first timed start to the last end."""
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(publishers), ctx.Queue()
    args = (url, queue, body, count // publishers)
    workers = [
        ctx.Process(target=_raw_worker, args=(args, barrier, out)) for _ in range(publishers)
    ]
    for worker in workers:
        worker.start()
    spans = [out.get(timeout=600) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    return sum(n for n, _, _ in spans) / (max(e for _, _, e in spans) - min(s for _, s, _ in spans))


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
    """Jobs/s of `QPUClient.submit_many` (up to 1000 confirms in flight)."""
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
    rates: dict[str, list[float]] = {k: [] for k in ("raw", "raw1", "rawN", "one", "many", "mpi")}

    def queue_of(settings: Settings) -> str:
        return build_topology(settings, Policy()).job_queue("production")

    ways: list[tuple[str, Callable[[Settings], float]]] = [
        ("raw", lambda s: raw_pika_rate(url, queue_of(s), body, count)),
        ("raw1", lambda s: raw_confirm_each_rate(url, queue_of(s), body, count)),
        ("rawN", lambda s: raw_parallel_rate(url, queue_of(s), body, count, RANKS)),
        ("one", lambda s: submit_rate(s, sequence, count)),
        ("many", lambda s: submit_many_rate(s, sequence, count)),
        ("mpi", lambda s: mpi_rate(s, seq_file, count, RANKS)),
    ]
    for sample in range(samples):
        shift = sample % len(ways)
        for name, measure in ways[shift:] + ways[:shift]:
            with bench_namespace(url) as settings:
                rates[name].append(measure(settings))
    return rates


def main(jobs: int, samples: int = 3, as_json: bool = False) -> None:
    """Print the real submit path (`bench.submit_real`), then jobs/s of each way of submitting
    padded JSON with no check and no owner (a lower bound) next to its raw pika baseline."""
    from bench import submit_real

    count = max(jobs, 1000)
    print(f"submit benchmark, {count} persistent jobs per measurement, confirms on")
    with discover() as handle:
        real = submit_real.report(submit_real.measure_real(handle.url, count, samples))
    print(
        "  lower bound: padded JSON, local sequence validation OFF (validate_locally=False: the broker-side cost only), no owner"
    )
    print("  figures: median [min..max] over samples; each measurement on a fresh queue")
    figures: dict[str, dict[str, float]] = {}
    with discover() as handle, tempfile.TemporaryDirectory() as tmp:
        for label, target in SIZES_BYTES.items():
            sequence = job_of_size(target)
            size = len(encode(JobRequest(job_class="production", shots=100, sequence=sequence)))
            rates = measure_size(handle.url, sequence, count, samples, Path(tmp) / "seq.json")
            med = {name: statistics.median(values) for name, values in rates.items()}
            print(f"  {label} job ({size} bytes encoded), jobs/s; ratio of medians, goal >= 0.8x")
            for name, text, base in (
                ("raw", "raw pika, 1000 confirms in flight ", None),
                ("many", "QPUClient.submit_many             ", "raw"),
                ("raw1", "raw pika, each confirm awaited    ", None),
                ("one", "QPUClient.submit (one by one)     ", "raw1"),
                ("rawN", f"{RANKS} raw pika publishers at once   ", None),
                ("mpi", f"{RANKS} MPI ranks, submit_many each   ", "rawN"),
            ):
                ratio = f"{med[name] / med[base]:4.2f}x vs {base}" if base else ""
                print(f"    {text} {summary(rates[name])}  {ratio}")
            figures[label] = med | {
                "many_vs_raw": med["many"] / med["raw"],
                "one_vs_raw1": med["one"] / med["raw1"],
                "mpi_vs_rawN": med["mpi"] / med["rawN"],
            }
    if as_json:
        line = {"bench": "submit", "jobs": count, "samples": samples, "validate_locally": False}
        print(json.dumps(line | {"sizes": figures, "real": real}))
