"""The real submit path: real Pulser sequences, the local check on, an owner running.

`bench submit` prints these next to its padded-JSON figures (those stay as a lower bound: no
check, no owner). Measured in one run, each next to a raw pika baseline taken in the same run:

- ``ack``: `QPUClient.submit` of one job whose sequence (abstract-repr text) is new each time,
  so every submit pays the whole local check, until the broker confirmed it; p50/p99 against
  pika publishing a body of the same size and waiting for its confirm (``raw1``). Warden
  acknowledges a POST in 5.2 ms (issue 21); the goal is p50 <= 2 ms.
- ``ack same``: the same with one sequence submitted again and again (the check's cache).
- ``distinct``: build 1,000 different `pulser.Sequence` objects and submit them, one job each
  (`build_job` + `submit_many`), inside the timed window, until every result is back from the
  owner (``synthetic`` backend, zero work). Goal >= 400 jobs/s (144 before issue 21).
- ``batch``: one parametrized sequence and 1,000 jobs (runs + variables) with
  `QPUClient.submit_batch`, until every result is back. Goal >= 1,000 jobs/s.
- ``add``: one job added to an open batch (`BatchHandle.add`), until confirmed; p50, goal
  <= 0.5 ms.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from bench.common import bench_namespace, delete_queues, owner_process, percentile
from bench.submit import raw_confirm_latencies_s
from brokers.settings import Settings
from producers.client import QPUClient
from schemas.codec import encode
from schemas.jobs import JobRequest

WARM_JOBS = 50


def distinct_sequence(index: int, parametrized: bool = False) -> Any:
    """A real 3-atom AnalogDevice sequence, different for each `index` (its pulse's duration
    and amplitude), or with the amplitude as a variable ``amp``."""
    from pulser import Pulse, Sequence
    from pulser.devices import AnalogDevice

    layout = next(iter(AnalogDevice.calibrated_register_layouts.values()))
    register = layout.define_register(0, 1, 2, qubit_ids=["q0", "q1", "q2"])
    seq = Sequence(register, AnalogDevice)
    seq.declare_channel("rydberg", "rydberg_global")
    amplitude: Any = seq.declare_variable("amp") if parametrized else 1.0 + (index // 1000) / 100
    seq.add(Pulse.ConstantPulse(200 + 4 * (index % 1000), amplitude, 0.0, 0.0), "rydberg")
    return seq


def _with_owner(settings: Settings, measure: Callable[[QPUClient], Any]) -> Any:
    with owner_process(settings, "--backend", "synthetic"):
        client = QPUClient(settings=settings)
        try:
            client.control(client_status(), timeout=60)
            warm = [client.submit(distinct_sequence(10_000 + i), 1) for i in range(WARM_JOBS)]
            for handle in warm:
                handle.result(timeout=120)
            return measure(client)
        finally:
            client.close()
            delete_queues(settings.amqp_url, [client.reply_queue_name])


def client_status() -> Any:
    """The command a benchmark sends to wait for the owner."""
    from schemas.enums import CommandName

    return CommandName.STATUS


def ack_latencies_s(client: QPUClient, texts: list[str]) -> list[float]:
    """Seconds from `submit` called to the broker's confirm, one job at a time."""
    times = []
    for text in texts:
        started = time.perf_counter()
        client.submit(text, 100)
        times.append(time.perf_counter() - started)
    return times


def distinct_rate(client: QPUClient, jobs: int) -> float:
    """Jobs/s of building `jobs` different sequences, submitting them, getting every result."""
    started = time.perf_counter()
    built = [client.build_job(distinct_sequence(i), 100) for i in range(jobs)]
    handles = client.submit_many(built)
    for handle in handles:
        handle.result(timeout=600)
    return jobs / (time.perf_counter() - started)


def batch_rate(client: QPUClient, jobs: int) -> float:
    """Jobs/s of one parametrized batch of `jobs` jobs, built, submitted, every result back."""
    started = time.perf_counter()
    batch = client.submit_batch(
        distinct_sequence(0, parametrized=True),
        [{"runs": 100, "variables": {"amp": 1.0 + (i % 100) / 100}} for i in range(jobs)],
    )
    batch.wait(timeout_s=600)
    return jobs / (time.perf_counter() - started)


def add_latencies_s(client: QPUClient, adds: int) -> list[float]:
    """Seconds from `BatchHandle.add` of one job to the broker's confirm."""
    batch = client.submit_batch(distinct_sequence(0, parametrized=True), [], open=True)
    times = []
    for i in range(adds):
        started = time.perf_counter()
        batch.add([{"runs": 10, "variables": {"amp": 1.0 + (i % 100) / 100}}])
        times.append(time.perf_counter() - started)
    batch.close()
    return times


def measure_real(url: str, jobs: int, samples: int) -> dict[str, list[float]]:
    """Each figure `samples` times, on fresh namespaces and owners."""
    texts = [str(distinct_sequence(20_000 + i).to_abstract_repr()) for i in range(jobs)]
    body = encode(JobRequest(job_class="production", shots=100, sequence=texts[0]))
    figures: dict[str, list[float]] = {
        k: [] for k in ("ack50", "ack99", "same50", "raw50", "raw99", "distinct", "batch", "add50")
    }
    for _ in range(samples):
        with bench_namespace(url) as settings:

            def ways(client: QPUClient) -> None:
                acks = ack_latencies_s(client, texts[: max(jobs // 5, 200)])
                figures["ack50"].append(percentile(acks, 0.5) * 1e3)
                figures["ack99"].append(percentile(acks, 0.99) * 1e3)
                same = ack_latencies_s(client, [texts[0]] * max(jobs // 5, 200))
                figures["same50"].append(percentile(same, 0.5) * 1e3)
                raw = raw_confirm_latencies_s(url, body, max(jobs // 5, 200))
                figures["raw50"].append(percentile(raw, 0.5) * 1e3)
                figures["raw99"].append(percentile(raw, 0.99) * 1e3)
                figures["distinct"].append(distinct_rate(client, jobs))
                if hasattr(client, "submit_batch"):
                    figures["batch"].append(batch_rate(client, jobs))
                    adds = add_latencies_s(client, max(jobs // 5, 200))
                    figures["add50"].append(percentile(adds, 0.5) * 1e3)

            _with_owner(settings, ways)
    return figures


def report(figures: dict[str, list[float]]) -> dict[str, float]:
    """Print the real-path figures; return their medians."""
    med = {k: statistics.median(v) for k, v in figures.items() if v}

    def line(label: str, key: str, goal: str) -> None:
        if key in med:
            values = figures[key]
            print(f"    {label:52s} {med[key]:9.2f} [{min(values):.2f}..{max(values):.2f}]  {goal}")

    print("  real path: real Pulser sequences, local check on, an owner running (synthetic)")
    line("submit acknowledged, new sequence each, p50 (ms)", "ack50", "goal <= 2 ms")
    line("                                        p99 (ms)", "ack99", "")
    line("submit acknowledged, same sequence, p50 (ms)", "same50", "")
    line("raw pika, each confirm awaited, p50 (ms)", "raw50", "baseline")
    line("                                p99 (ms)", "raw99", "")
    if "ack50" in med and "raw50" in med:
        print(f"    ratio submit / raw p50 {med['ack50'] / med['raw50']:.2f}x")
    line("1,000 distinct sequences, one job each (jobs/s)", "distinct", "goal >= 400")
    line("parametrized batch of 1,000 jobs (jobs/s)", "batch", "goal >= 1000")
    line("one job added to an open batch, p50 (ms)", "add50", "goal <= 0.5 ms")
    return med
