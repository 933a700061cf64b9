"""Synthetic backend: random bitstrings at a configured shot rate and failure rate.

For load and chaos tests only, never the default. With no shot rate it answers at once, which is
what the dispatch-overhead benchmark needs. Randomness comes from a seeded `random.Random`.
Runs go to one long-lived worker thread (the QPU runs one job at a time): starting a thread per
run cost the owner's loop a thread start (milliseconds on a loaded machine) on every dispatch.
"""

from __future__ import annotations

import queue
import random
import threading
import time
from collections import Counter
from typing import TYPE_CHECKING

from consumers.backends.base import (
    LocalBackend,
    RunOutcome,
    RunReports,
    RunRequest,
    accumulate,
    register_size,
)
from schemas.enums import ErrorCode
from schemas.jobs import JobError

if TYPE_CHECKING:
    from pulser.devices._device_datacls import BaseDevice


class SyntheticBackend(LocalBackend):
    """Random results, paced like a QPU when `shot_rate_hz` is set."""

    name = "synthetic"

    def __init__(
        self,
        shot_rate_hz: float | None = None,
        failure_rate: float = 0.0,
        chunk_shots: int = 100,
        seed: int | None = None,
        device: BaseDevice | None = None,
    ) -> None:
        self._rate = shot_rate_hz
        self._failure_rate = failure_rate
        self._chunk = chunk_shots
        self._random = random.Random(seed)
        self._device = device
        self._cancels: dict[str, threading.Event] = {}
        self._runs: queue.SimpleQueue[tuple[RunRequest, RunReports, threading.Event, int, bool]] = (
            queue.SimpleQueue()
        )
        self._worker: threading.Thread | None = None

    def start(self, request: RunRequest, reports: RunReports) -> None:
        """Hand the run to the worker thread (started on first use); returns at once."""
        canceled = threading.Event()
        self._cancels[request.job_id] = canceled
        seed = self._random.getrandbits(64)
        fail = self._random.random() < self._failure_rate
        if self._worker is None:
            self._worker = threading.Thread(target=self._work, name="synthetic-qpu", daemon=True)
            self._worker.start()
        self._runs.put((request, reports, canceled, seed, fail))

    def _work(self) -> None:
        while True:
            request, reports, canceled, seed, fail = self._runs.get()
            try:
                self._run(request, reports, canceled, seed, fail)
            except Exception as exc:  # one broken run must not stop the worker
                error = JobError(
                    code=ErrorCode.BACKEND_ERROR, message=f"synthetic run failed: {exc!r}"
                )
                reports.finished(RunOutcome(request.job_id, {}, error=error))

    def _run(
        self,
        request: RunRequest,
        reports: RunReports,
        canceled: threading.Event,
        seed: int,
        fail: bool,
    ) -> None:
        rng = random.Random(seed)
        n_bits = register_size(request.sequence)
        total: Counter[str] = Counter()
        done = 0
        try:
            while done < request.shots:
                if canceled.is_set():
                    reports.finished(RunOutcome(request.job_id, dict(total), canceled=True))
                    return
                n = (
                    request.shots - done
                    if self._rate is None
                    else min(self._chunk, request.shots - done)
                )
                shots = [format(rng.getrandbits(n_bits), f"0{n_bits}b") for _ in range(n)]
                chunk = Counter(shots)
                began = time.monotonic()
                if self._rate is not None and canceled.wait(n / self._rate):
                    # the shots measured before the stop are real: keep them
                    measured = min(int((time.monotonic() - began) * self._rate), n)
                    counts = accumulate(total, Counter(shots[:measured]))
                    reports.finished(RunOutcome(request.job_id, counts, canceled=True))
                    return
                done += n
                counts = accumulate(total, chunk)
                if fail and done * 2 >= request.shots:
                    error = JobError(
                        code=ErrorCode.BACKEND_ERROR,
                        message="synthetic failure (configured failure rate)",
                        retryable=True,
                    )
                    reports.finished(RunOutcome(request.job_id, counts, error=error))
                    return
                if done < request.shots:
                    reports.progress(request.job_id, done, counts)
            reports.finished(RunOutcome(request.job_id, dict(total)))
        finally:
            self._cancels.pop(request.job_id, None)

    def cancel(self, job_id: str) -> None:
        """Stop at the next chunk boundary."""
        event = self._cancels.get(job_id)
        if event is not None:
            event.set()
