"""One MPI rank of the submit benchmark; rank 0 prints the aggregate jobs/s last."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from mpi4py import MPI

from producers.client import QPUClient


def main() -> None:
    """Submit `count` jobs with submit_many between two barriers."""
    sequence, count = Path(sys.argv[1]).read_text(), int(sys.argv[2])
    comm = MPI.COMM_WORLD
    client = QPUClient(validate_locally=False)
    jobs = [client.build_job(sequence, 100) for _ in range(count)]
    comm.Barrier()
    started = time.perf_counter()
    client.submit_many(jobs)
    comm.Barrier()
    elapsed = time.perf_counter() - started
    client.close()
    if comm.Get_rank() == 0:
        print(count * comm.Get_size() / elapsed)


if __name__ == "__main__":
    main()
