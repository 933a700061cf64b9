"""Child process of the emulator backend: runs Pulser sequences on QutipBackendV2.

Protocol, one JSON object per line. stdin: ``{"job_id", "sequence", "shots", "shot_rate_hz",
"chunk_shots"}``. stdout: ``{"event": "progress", "job_id", "counts"}`` per step of shots (the
step's own counts; a step is a chunk, or at most about a second of shots when paced, so a kill
loses at most a second of measurements), then ``{"event": "done", "job_id"}`` or ``{"event": "error", "job_id",
"message"}``. The sequence is emulated once; shots are sampled from its final state chunk by chunk,
paced to `shot_rate_hz` when given, so a job takes as long as on a QPU and can be cut short
without losing the shots already measured.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO


def _emit(out: TextIO, **fields: Any) -> None:
    out.write(json.dumps(fields) + "\n")
    out.flush()


def run_one(request: dict[str, Any], out: TextIO) -> None:
    """Emulate one job and stream its counts chunk by chunk."""
    from pulser import Sequence
    from pulser_simulation import QutipBackendV2

    job_id = request["job_id"]
    try:
        sequence = Sequence.from_abstract_repr(request["sequence"])
        if request.get("variables"):  # a batch job: its batch's sequence, built here
            sequence = sequence.build(**request["variables"])
        state = QutipBackendV2(sequence).run().final_state
    except Exception as exc:  # a bad sequence must become an error line, not a dead worker
        _emit(out, event="error", job_id=job_id, message=f"emulation failed: {exc}"[:500])
        return
    shots, rate = int(request["shots"]), request.get("shot_rate_hz")
    chunk = int(request.get("chunk_shots") or shots)
    if rate:
        chunk = max(1, min(chunk, int(rate)))
    done = 0
    while done < shots:
        n = min(chunk, shots - done)
        started = time.monotonic()
        counts = state.sample(num_shots=n)
        if rate:
            time.sleep(max(0.0, n / float(rate) - (time.monotonic() - started)))
        done += n
        _emit(out, event="progress", job_id=job_id, counts=dict(counts))
    _emit(out, event="done", job_id=job_id)


def main() -> None:
    """Serve requests from stdin until it closes."""
    import pulser_simulation  # noqa: F401 - pay the import before the first job arrives

    for line in sys.stdin:
        if line.strip():
            run_one(json.loads(line), sys.stdout)


if __name__ == "__main__":
    main()
