"""Sweep a pulse amplitude across MPI ranks; each rank submits its jobs, rank 0 gathers the counts.

Run it under any MPI launcher, e.g. ``mpiexec -n 4 python examples/mpi_sweep.py --shots 200``;
``--mode rank`` gives every rank its own connection, ``--mode node`` (default) one per node.
The broker URL and namespace come from the usual ``QSCHED_*`` variables. Rank 0 submits in the
``production`` class and the others in ``development``, so the QPU owner's policy is visible in the
order the results come back.
"""

from __future__ import annotations

import argparse
import json
import os

from mpi4py import MPI
from pulser import Pulse, Sequence
from pulser.devices import AnalogDevice

from brokers.tracing import configure_tracing
from producers.mpi import JobSpec, MPISubmitter


def build_sequence(amplitude: float, n_atoms: int = 3, duration_ns: int = 500) -> Sequence:
    """A global Rydberg pulse of `amplitude` rad/µs on `n_atoms` traps of the device's layout."""
    layout = next(iter(AnalogDevice.calibrated_register_layouts.values()))
    register = layout.define_register(*range(n_atoms), qubit_ids=[f"q{i}" for i in range(n_atoms)])
    seq = Sequence(register, AnalogDevice)
    seq.declare_channel("rydberg", "rydberg_global")
    seq.add(Pulse.ConstantPulse(duration_ns, amplitude, 0.0, 0.0), "rydberg")
    return seq


def main() -> None:
    """Submit this rank's share of the sweep and print the gathered table on rank 0."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shots", type=int, default=200)
    parser.add_argument("--jobs-per-rank", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--mode", choices=["rank", "node"], default="node")
    parser.add_argument("--json", action="store_true", help="print rows as JSON lines on rank 0")
    args = parser.parse_args()
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    configure_tracing(f"qsched-mpi-rank{rank}")  # OTEL_* variables choose the exporter, if any
    total = size * args.jobs_per_rank
    amplitudes = [1.0 + 9.0 * i / max(total - 1, 1) for i in range(total)][rank::size]
    job_class = "production" if rank == 0 else "development"
    session = f"slurm-{os.environ.get('SLURM_JOB_ID', 'local')}-rank{rank}"
    submitter = MPISubmitter(comm, args.mode)
    specs = [
        JobSpec(build_sequence(amp), args.shots, job_class, session_id=session)
        for amp in amplitudes
    ]
    results = submitter.run(specs, timeout_s=args.timeout)
    connections = submitter.connections_on_node
    submitter.close()
    rows = []
    for amp, result in zip(amplitudes, results, strict=True):
        shots = sum(result.counts.values()) or 1
        excited = sum(bits.count("1") * n for bits, n in result.counts.items()) / (shots * 3)
        rows.append(
            (
                rank,
                job_class,
                amp,
                result.state.value,
                sum(result.counts.values()),
                excited,
                result.job_id,
            )
        )
    gathered = comm.gather(rows, root=0)
    if rank == 0 and args.json:
        for row in (r for part in gathered for r in part):
            keys = ("rank", "job_class", "amplitude", "state", "shots", "p_excited", "job_id")
            print(json.dumps(dict(zip(keys, row, strict=True)) | {"connections": connections}))
    elif rank == 0:
        print(f"mode {args.mode}: {connections} broker connection(s) on this node for {size} ranks")
        print(
            f"{'rank':>4} {'class':<12} {'amplitude':>9} {'state':<6} {'shots':>5} {'P(excited)':>10}"
        )
        for row in sorted((r for part in gathered for r in part), key=lambda r: r[2]):
            print(
                f"{row[0]:>4} {row[1]:<12} {row[2]:>9.2f} {row[3]:<6} {row[4]:>5} {row[5]:>10.3f}"
            )


if __name__ == "__main__":
    main()
