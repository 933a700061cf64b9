"""One MPI rank inside a Slurm batch job (run as the test's unix user, see test_slurm.py).

slurm_rank.py results OUT_DIR         submit one job through qsched, wait, write rank-N.json
slurm_rank.py nowait OUT_DIR N SHOTS  submit N jobs, write their ids to ids.json, then sleep
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from mpi4py import MPI

from producers.client import QPUClient
from producers.mpi import JobSpec, MPISubmitter
from producers.slurm import slurm_context
from tests.support.sequences import analog_sequence


def main(what: str, out: Path, *args: str) -> None:
    comm = MPI.COMM_WORLD
    context = slurm_context()
    seen = {
        "rank": comm.Get_rank(),
        "context": context.model_dump(mode="json") if context else None,
        "prolog_end": os.environ.get("SLURM_JOB_END_TIME"),
    }
    if what == "results":
        submitter = MPISubmitter(
            comm, mode="rank", client_factory=lambda: QPUClient(validate_locally=False)
        )
        results = submitter.run([JobSpec(analog_sequence(2), 20)], timeout_s=120)
        submitter.close()
        seen["results"] = [
            {"job_id": r.job_id, "state": r.state.value, "shots": sum(r.counts.values())}
            for r in results
        ]
        (out / f"rank-{comm.Get_rank()}.json").write_text(json.dumps(seen))
        return
    client = QPUClient(validate_locally=False)
    handles = [client.submit(analog_sequence(2), int(args[1])) for _ in range(int(args[0]))]
    seen["job_ids"] = [h.job_id for h in handles]
    (out / "ids.json").write_text(json.dumps(seen))
    time.sleep(600)  # until Slurm ends the allocation (scancel or time limit)


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), *sys.argv[3:])
