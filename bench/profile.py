"""Where the owner's time goes between "QPU free" and "next job started": a cProfile of its loop.

``python -m bench profile --jobs 2000`` queues N zero-work jobs while the owner (``synthetic``
backend, under cProfile, `bench.profile_owner`) is paused, releases them, waits for every result,
stops the owner and prints the functions of the loop's thread by own time and by cumulative time.
``--json`` adds one line with the jobs/s of the profiled run and the top entries.
"""

from __future__ import annotations

import io
import json
import pstats
import sys
import tempfile
import time
from pathlib import Path

from bench.common import bench_namespace, delete_queues, discover, owner_process
from producers.client import QPUClient
from schemas.enums import CommandName
from tests.support.sequences import analog_sequence

SHOWN = 25


def profile_dispatch(url: str, jobs: int, out: Path) -> float:
    """Run `jobs` zero-work jobs through a profiled owner; its stats go to `out`; jobs/s."""
    program = [sys.executable, "-m", "bench.profile_owner", str(out)]
    with (
        bench_namespace(url) as settings,
        owner_process(settings, "--backend", "synthetic", program=program),
    ):
        client = QPUClient(settings=settings, validate_locally=False)
        try:
            client.control(CommandName.STATUS, timeout=60)
            sequence = analog_sequence(2)
            assert client.control(CommandName.PAUSE).ok
            handles = client.submit_many(
                [client.build_job(sequence, 1, job_class="production") for _ in range(jobs)]
            )
            started = time.perf_counter()
            assert client.control(CommandName.RESUME).ok
            for handle in handles:
                handle.result(timeout=600)
            rate = jobs / (time.perf_counter() - started)
        finally:
            client.close()
            delete_queues(url, [client.reply_queue_name])
    return rate


def main(jobs: int, as_json: bool = False) -> None:
    """Print the owner's profile for `jobs` dispatches."""
    with discover() as handle, tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "owner.prof"
        rate = profile_dispatch(handle.url, jobs, out)
        text = io.StringIO()
        stats = pstats.Stats(str(out), stream=text).strip_dirs()
        print(f"owner profile, {jobs} zero-work jobs on the synthetic backend: {rate:.0f} jobs/s")
        stats.sort_stats("tottime").print_stats(SHOWN)
        stats.sort_stats("cumulative").print_callees(
            r"(shell|confirmed).py:\d+\((dispatch|commit|carry_out_confirmed|_start)\)"
        )
        stats.sort_stats("cumulative").print_stats(SHOWN)
        print(text.getvalue())
        if as_json:
            raw: dict = stats.stats  # type: ignore[attr-defined]
            top = sorted(raw.items(), key=lambda kv: kv[1][2], reverse=True)[:SHOWN]
            entries = [
                {"function": f"{f}:{line}:{name}", "tottime_s": round(v[2], 4), "calls": v[1]}
                for (f, line, name), v in top
            ]
            print(
                json.dumps({"bench": "profile", "jobs": jobs, "jobs_per_s": rate, "top": entries})
            )
