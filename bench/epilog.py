"""The Slurm Epilog's call, both ways, against a real owner: ``qsched ctl allocation-ended``
(the full CLI) vs ``qsched-epilog`` (settings, schemas and pika only).

    python -m bench epilog

Each sample is a whole process: start, connect, send ``allocation-ended``, wait for the owner's
reply. This is the part of "scancel -> running QPU job stopped" that qsched controls (Slurm
starts the Epilog about 0.2 s after scancel; the owner stops the run within milliseconds of the
command, see tests/e2e/test_slurm.py). Samples alternate, so both see the same machine load.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.common import bench_namespace, child_env, owner_process
from producers.client import QPUClient
from schemas.enums import CommandName

SAMPLES = 6


def _bin(name: str) -> str:
    return shutil.which(name) or str(Path(sys.executable).with_name(name))


def main(jobs: int) -> None:
    """Print the median time of each way and their ratio (`jobs` is not used)."""
    del jobs
    times: dict[str, list[float]] = {"qsched ctl allocation-ended": [], "qsched-epilog": []}
    with bench_namespace() as settings, owner_process(settings, "--backend", "synthetic"):
        with QPUClient(settings=settings, validate_locally=False) as client:
            client.control(CommandName.STATUS, timeout=120)
        env = child_env(settings)
        for i in range(SAMPLES):
            for name, command in (
                ("qsched ctl allocation-ended", [_bin("qsched"), "ctl", "allocation-ended"]),
                ("qsched-epilog", [_bin("qsched-epilog")]),
            ):
                began = time.perf_counter()
                done = subprocess.run(
                    [*command, f"bench-{i}"], env=env, capture_output=True, text=True, timeout=60
                )
                times[name].append(time.perf_counter() - began)
                assert done.returncode == 0 and "ended" in done.stdout, done.stderr
    medians = {name: statistics.median(v) for name, v in times.items()}
    for name, v in times.items():
        print(f"  {name:<28} median {medians[name]:5.2f} s  [{min(v):.2f}..{max(v):.2f}]")
    ratio = medians["qsched-epilog"] / medians["qsched ctl allocation-ended"]
    print(f"  qsched-epilog / full CLI     {ratio:5.2f}")
    print(json.dumps({"bench": "epilog", "median_s": medians, "ratio": ratio}))
