"""Emulator lanes: development turnaround while the QPU is busy with production, lanes off vs
on, and the QPU's idle gap between production jobs (it must not grow with lanes).

    python -m bench lanes --jobs 500      # jobs // 25 development jobs (20), 10 production jobs

Both configurations run in the same invocation, each on a fresh namespace with its own owner
(``synthetic`` QPU paced at `QPU_SHOT_RATE_HZ`, so production keeps it busy for about
`PRODUCTION_JOBS * PRODUCTION_SHOTS / QPU_SHOT_RATE_HZ` seconds). The production and development
jobs are submitted together, after one warm-up job per lane with the QPU paused (a lane worker
imports Pulser when it starts); development turnaround is submit -> result on the client's clock,
the QPU idle gap is ``started_at`` of a production job minus ``ended_at`` of the one before it
(owner's clock). Printed as lanes-on figures and their ratio to lanes off.
"""

from __future__ import annotations

import itertools
import statistics
import tempfile
import time
from pathlib import Path

from bench.common import bench_namespace, discover, owner_process, percentile
from producers.client import QPUClient
from schemas.enums import CommandName, JobState
from schemas.jobs import JobResult
from tests.support.sequences import analog_sequence

QPU_SHOT_RATE_HZ = 20.0  # a QPU measures a few shots per second; the emulator is faster
PRODUCTION_JOBS = 10
PRODUCTION_SHOTS = 40
DEVELOPMENT_SHOTS = 20
POLICY = """
[lanes]
emulators = {lanes}
[classes.calibration]
rank = 0
preempts = ["production", "development"]
calibrates = true
[classes.production]
rank = 1
modes = ["production", "development"]
[classes.development]
rank = 2
modes = ["production", "development"]
placement = {{ production = "either" }}
"""


def run(url: str, lanes: int, development_jobs: int) -> tuple[list[float], list[float]]:
    """Development turnarounds (s) and QPU idle gaps between production jobs (s)."""
    with tempfile.TemporaryDirectory() as tmp, bench_namespace(url) as settings:
        policy = Path(tmp) / "policy.toml"
        policy.write_text(POLICY.format(lanes=lanes))
        args = ("--policy", str(policy), "--backend", "synthetic")
        rate = {"QSCHED_OWNER__SHOT_RATE_HZ": str(QPU_SHOT_RATE_HZ)}
        with owner_process(settings, *args, env=rate), QPUClient(settings=settings) as client:
            client.control(CommandName.STATUS, timeout=60)
            seq = analog_sequence(2)
            if lanes:  # each lane worker imports Pulser and runs once, while the QPU is paused
                client.control(CommandName.PAUSE)
                warm = [client.submit(seq, 1, job_class="development") for _ in range(lanes)]
                for handle in warm:
                    handle.result(timeout=600)
                client.control(CommandName.RESUME)
            production = [
                client.submit(seq, PRODUCTION_SHOTS, job_class="production")
                for _ in range(PRODUCTION_JOBS)
            ]
            submitted = time.monotonic()
            development = [
                client.submit(seq, DEVELOPMENT_SHOTS, job_class="development")
                for _ in range(development_jobs)
            ]
            turnaround: list[float] = []
            for handle in development:
                result = handle.result(timeout=600)
                assert result.state is JobState.DONE, result.error
                turnaround.append(time.monotonic() - submitted)
            finished = [h.result(timeout=600) for h in production]
        return turnaround, idle_gaps(finished)


def idle_gaps(results: list[JobResult]) -> list[float]:
    """Seconds the QPU stood idle between consecutive production jobs."""
    runs = sorted(
        (r.timings.started_at, r.timings.ended_at)
        for r in results
        if r.timings.started_at and r.timings.ended_at
    )
    return [(b[0] - a[1]).total_seconds() for a, b in itertools.pairwise(runs)]


def main(jobs: int) -> None:
    """Print development turnaround and QPU idle gaps, lanes off vs on."""
    development_jobs = max(jobs // 25, 4)
    with discover() as handle:
        off_turn, off_gaps = run(handle.url, 0, development_jobs)
        on_turn, on_gaps = run(handle.url, 2, development_jobs)
    busy_s = PRODUCTION_JOBS * PRODUCTION_SHOTS / QPU_SHOT_RATE_HZ
    print(
        f"lanes: {development_jobs} development jobs of {DEVELOPMENT_SHOTS} shots beside "
        f"{PRODUCTION_JOBS} production jobs (~{busy_s:.0f} s of QPU work)"
    )
    for what, off, on in (
        (
            "development turnaround median (s)",
            statistics.median(off_turn),
            statistics.median(on_turn),
        ),
        ("development turnaround p90 (s)", percentile(off_turn, 0.9), percentile(on_turn, 0.9)),
        (
            "QPU idle gap median (ms)",
            1e3 * statistics.median(off_gaps),
            1e3 * statistics.median(on_gaps),
        ),
        ("QPU idle gap max (ms)", 1e3 * max(off_gaps), 1e3 * max(on_gaps)),
    ):
        print(
            f"  {what:36s} off {off:9.2f}  on {on:9.2f}  on/off {on / off if off else float('nan'):.2f}x"
        )
