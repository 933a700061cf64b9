"""Does serving Prometheus metrics cost the dispatch path anything?

The same batch of zero-length jobs (synthetic backend) through an owner without metrics and
through one serving /metrics while a scraper reads it ten times a second (Prometheus would read
it every 5-15 s), alternated in the same run: throughput and the gap between one job's end and
the next one's start (the owner's dispatch overhead), with metrics on / off as ratios.
"""

from __future__ import annotations

import itertools
import statistics
import threading
import urllib.request

from bench.common import bench_namespace, delete_queues, discover, owner_process, percentile
from brokers.bootstrap import free_port
from producers.client import QPUClient
from schemas.enums import CommandName
from tests.support.sequences import analog_sequence

SCRAPE_EVERY_S = 0.1


def _scrape_until(url: str, stop: threading.Event, counts: list[int]) -> None:
    while not stop.wait(SCRAPE_EVERY_S):
        with urllib.request.urlopen(url, timeout=5) as response:
            response.read()
        counts[0] += 1


def run(url: str, jobs: int, metrics: bool) -> tuple[list[float], float, int]:
    """(dispatch gaps in s, jobs/s, scrapes) of one owner on a fresh namespace."""
    port = free_port()
    env = {"QSCHED_OWNER__METRICS_PORT": str(port)} if metrics else {}
    stop = threading.Event()
    scrapes = [0]
    with (
        bench_namespace(url) as settings,
        owner_process(settings, "--backend", "synthetic", env=env),
    ):
        client = QPUClient(settings=settings)
        scraper = threading.Thread(
            target=_scrape_until,
            args=(f"http://127.0.0.1:{port}/metrics", stop, scrapes),
            daemon=True,
        )
        try:
            client.control(CommandName.STATUS, timeout=60)
            sequence = analog_sequence(2)
            for handle in [client.submit(sequence, 1, job_class="production") for _ in range(20)]:
                handle.result(timeout=120)
            if metrics:
                scraper.start()
            assert client.control(CommandName.PAUSE).ok
            handles = [client.submit(sequence, 1, job_class="production") for _ in range(jobs)]
            assert client.control(CommandName.RESUME).ok
            results = sorted(
                (h.result(timeout=300) for h in handles), key=lambda r: r.timings.started_at
            )
        finally:
            stop.set()
            if scraper.is_alive():
                scraper.join(timeout=10)
            client.close()
            delete_queues(url, [client.reply_queue_name])
    gaps = [
        (nxt.timings.started_at - prev.timings.ended_at).total_seconds()
        for prev, nxt in itertools.pairwise(results)
    ]
    span_s = (results[-1].timings.ended_at - results[0].timings.started_at).total_seconds()
    return gaps, jobs / span_s, scrapes[0]


def main(jobs: int, samples: int = 3) -> None:
    """Print throughput and dispatch overhead with metrics off and on, and their ratios."""
    figures: dict[bool, dict[str, list[float]]] = {
        on: {"jobs/s": [], "p50": [], "p99": []} for on in (False, True)
    }
    scraped = 0
    with discover() as handle:
        for sample in range(samples):
            for on in (False, True) if sample % 2 == 0 else (True, False):
                gaps, rate, scrapes = run(handle.url, jobs, on)
                figures[on]["jobs/s"].append(rate)
                figures[on]["p50"].append(percentile(gaps, 0.5) * 1e3)
                figures[on]["p99"].append(percentile(gaps, 0.99) * 1e3)
                scraped += scrapes
    med = {on: {k: statistics.median(v) for k, v in f.items()} for on, f in figures.items()}
    print(f"metrics benchmark, {jobs} jobs on the synthetic backend, {samples} samples each")
    print(f"  scrapes of /metrics during the runs with metrics on: {scraped}")
    for key, unit in (("jobs/s", "jobs/s"), ("p50", "ms"), ("p99", "ms")):
        off, on = med[False][key], med[True][key]
        print(f"  {key:<7} off {off:9.2f} {unit:<6} on {on:9.2f} {unit:<6} on/off {on / off:5.2f}x")
