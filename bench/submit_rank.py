"""One MPI rank of the submit benchmark; rank 0 prints the aggregate jobs/s last."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from mpi4py import MPI

from brokers.connection import channel
from producers.client import QPUClient


def main() -> None:
    """Warm up, then submit `count` jobs with submit_many between two barriers."""
    sequence, count = Path(sys.argv[1]).read_text(), int(sys.argv[2])
    warmup = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    comm = MPI.COMM_WORLD
    client = QPUClient(validate_locally=False)
    if warmup:
        client.submit_many([client.build_job(sequence, 100) for _ in range(warmup)])
    jobs = [client.build_job(sequence, 100) for _ in range(count)]
    comm.Barrier()
    started = time.perf_counter()
    client.submit_many(jobs)
    comm.Barrier()
    elapsed = time.perf_counter() - started
    client.close()
    with channel(client.settings.amqp_url) as ch:
        ch.queue_delete(client.reply_queue_name)
    if comm.Get_rank() == 0:
        print(count * comm.Get_size() / elapsed)


if __name__ == "__main__":
    main()
