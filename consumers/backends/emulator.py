"""Emulator backend: pulser-simulation in a child process, the embedded default.

The child (`emulator_worker`) lives across jobs, so Pulser is imported once. Cancel kills it and
a fresh one is started for the next job: a cancel is immediate whatever the emulation is doing,
and a crash of the child becomes an ERROR result while the owner lives on.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING

from consumers.backends.base import (
    LocalBackend,
    RunOutcome,
    RunReports,
    RunRequest,
)
from schemas.enums import ErrorCode
from schemas.jobs import JobError

if TYPE_CHECKING:
    from pulser.devices._device_datacls import BaseDevice


@dataclass
class _Run:
    request: RunRequest
    reports: RunReports
    worker: subprocess.Popen[str]
    total: Counter[str] = field(default_factory=Counter)
    canceled: bool = False
    reported: int = 0


class EmulatorBackend(LocalBackend):
    """Runs jobs on QutipBackendV2 in a child process, optionally paced to a shot rate."""

    name = "emulator"

    def __init__(
        self,
        shot_rate_hz: float | None = None,
        chunk_shots: int = 100,
        device: BaseDevice | None = None,
        nice: int = 0,
    ) -> None:
        self._rate = shot_rate_hz
        self._chunk = chunk_shots
        self._device = device
        self._nice = nice  # raise the child's niceness (emulator lanes yield the CPU to the owner)
        self._lock = threading.Lock()
        self._worker: subprocess.Popen[str] | None = None
        self._run: _Run | None = None
        self._spawn()

    def _spawn(self) -> subprocess.Popen[str]:
        nice = (
            shutil.which("nice") if self._nice else None
        )  # exec'd: no preexec_fn in a threaded parent
        prefix = [nice, "-n", str(self._nice)] if nice else []
        self._worker = subprocess.Popen(
            [*prefix, sys.executable, "-m", "consumers.backends.emulator_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        return self._worker

    def start(self, request: RunRequest, reports: RunReports) -> None:
        """Hand the job to the child and read its answers in a thread."""
        with self._lock:
            worker = self._worker
            if worker is None or worker.poll() is not None:
                worker = self._spawn()
            run = _Run(request, reports, worker)
            self._run = run
        line = {
            "job_id": request.job_id,
            "sequence": request.sequence,
            "variables": request.variables,
            "shots": request.shots,
            "shot_rate_hz": self._rate,
            "chunk_shots": self._chunk if self._rate else None,
        }
        assert worker.stdin is not None
        try:
            worker.stdin.write(json.dumps(line) + "\n")
            worker.stdin.flush()
        except OSError:
            pass  # the reader sees the dead child and reports it
        threading.Thread(target=self._read, args=(run,), daemon=True).start()

    def _read(self, run: _Run) -> None:
        stream: IO[str] | None = run.worker.stdout
        assert stream is not None
        job_id = run.request.job_id
        for line in stream:
            message = json.loads(line)
            if message.get("job_id") != job_id:
                continue
            if message["event"] == "progress":
                run.total.update(message["counts"])
                measured = sum(run.total.values())
                # Steps may be short (see emulator_worker); progress goes out once per chunk.
                if measured < run.request.shots and measured - run.reported >= (self._chunk or 1):
                    run.reported = measured
                    run.reports.progress(job_id, measured, dict(run.total))
            elif message["event"] == "done":
                self._finish(run, RunOutcome(job_id, dict(run.total)))
                return
            else:
                error = JobError(code=ErrorCode.BACKEND_ERROR, message=message["message"])
                self._finish(run, RunOutcome(job_id, dict(run.total), error=error))
                return
        code = run.worker.wait()
        if run.canceled:
            self._finish(run, RunOutcome(job_id, dict(run.total), canceled=True))
            return
        error = JobError(
            code=ErrorCode.BACKEND_ERROR,
            message=f"emulator process died (exit code {code}) while running the job",
            retryable=True,
        )
        self._finish(run, RunOutcome(job_id, dict(run.total), error=error))

    def _finish(self, run: _Run, outcome: RunOutcome) -> None:
        with self._lock:
            if self._run is run:
                self._run = None
            if run.worker.poll() is not None and self._worker is run.worker:
                self._spawn()  # ready for the next job
        run.reports.finished(outcome)

    def cancel(self, job_id: str) -> None:
        """Kill the child running `job_id`; its reader reports the cancel."""
        with self._lock:
            run = self._run
            if run is None or run.request.job_id != job_id:
                return
            run.canceled = True
            run.worker.kill()

    def close(self) -> None:
        """Stop the child."""
        with self._lock:
            if self._worker is not None:
                self._worker.kill()
                self._worker.wait()
                self._worker = None
