"""Backend for any QRMI resource, through the ``qrmi`` library (``--backend qrmi``).

Configured the QRMI way: the resource's name (``owner.qrmi_resource``) and type
(``owner.qrmi_type``, a ``qrmi.ResourceType`` name, ``PasqalLocal`` by default), everything else
from the environment the way Slurm's QRMI plugin sets it (``<NAME>_QRMI_WARDEN_URL``,
``QRMI_JOB_UID``, ``QRMI_JOB_ID`` for PasqalLocal; the cloud types' own variables).

The owner acquires the resource when it becomes active (its first call here, for the device)
and releases it when it stops (`close`); the acquisition token goes where QRMI reads it,
``<NAME>_QRMI_JOB_ACQUISITION_TOKEN``. A run is one QRMI task (``task_start`` with the Pulser
sequence and its shots), followed in a thread of its own by ``task_status`` every ``poll_s``,
stopped with ``task_stop``, and collected with ``task_result`` (``{"counter": {...}}``). A task
past ``run_timeout_s`` is stopped and the run fails BACKEND_TIMEOUT, retryable.

Errors and the retry budget: the qrmi library raises one error type whose text carries the HTTP
status of the resource's answer. No answer, 5xx and 429 are retryable (BACKEND_UNAVAILABLE: the
owner's retry budget decides); 401/403 means the acquisition lapsed (the session ended): the
resource is acquired again and the start tried once more; any other 4xx is final (BACKEND_ERROR).
A task that ends Failed is retryable like a QPU error.

Adoption: QRMI cannot list a resource's tasks, so a dead owner's task is found through the
journal (``owner.qrmi_journal``, a file the owners share): each run records its task id before
following it. A new owner's run of the same job first looks there and, when that task is still
queued or running (or completed: the dead owner only missed its end), follows it instead of
starting another. Without a journal the job simply runs again.

The ``qrmi`` objects are not thread-safe (each call borrows the resource mutably): every call
goes through one lock.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from consumers.backends.base import Backend, RunOutcome, RunReports, RunRequest
from consumers.errors import BackendFailure
from schemas.enums import ErrorCode
from schemas.jobs import JobError

if TYPE_CHECKING:
    from pulser.devices._device_datacls import BaseDevice

log = logging.getLogger(__name__)
_STATUS = re.compile(r"Status: (\d{3})")
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
LAPSED_STATUS = frozenset({401, 403})


def classify(exc: Exception) -> tuple[bool, bool]:
    """(retryable, lapsed) for an error the qrmi library raised: no HTTP status (no answer),
    5xx or 429 are retryable; 401/403 mean the acquisition lapsed; other 4xx are final."""
    found = _STATUS.search(str(exc))
    if found is None:
        return True, False
    status = int(found.group(1))
    return status in RETRYABLE_STATUS, status in LAPSED_STATUS


class QrmiFailure(BackendFailure):
    """What a qrmi call raised, classified; `lapsed`: the acquisition is no longer valid."""

    def __init__(self, message: str, retryable: bool, lapsed: bool) -> None:
        super().__init__(message, retryable=retryable)
        self.lapsed = lapsed


@dataclass
class _Run:
    request: RunRequest
    reports: RunReports
    task: str | None = None
    cancel_requested: bool = False
    stop_sent: bool = False


class QrmiBackend(Backend):
    """Drives one QRMI resource.

    Args:
        resource: the QRMI resource name.
        resource_type: a ``qrmi.ResourceType`` member name.
        poll_s: interval between ``task_status`` calls.
        run_timeout_s: a task running longer is stopped (the run fails, retryable).
        journal: the task journal the owners share (None: no adoption).
    """

    name = "qrmi"

    def __init__(
        self,
        resource: str,
        resource_type: str = "PasqalLocal",
        poll_s: float = 0.1,
        run_timeout_s: float = 3600.0,
        journal: Path | None = None,
    ) -> None:
        try:
            import qrmi
        except ImportError as exc:
            raise BackendFailure(
                "the qrmi backend needs the qrmi package: pip install 'qsched[qrmi]'",
                retryable=False,
            ) from exc
        self._qrmi: Any = qrmi
        kind = getattr(self._qrmi.ResourceType, resource_type, None)
        if kind is None:
            raise BackendFailure(f"no QRMI resource type {resource_type!r}", retryable=False)
        self.resource_name = resource
        self._resource = self._qrmi.QuantumResource(resource, kind)
        self._poll_s = poll_s
        self._run_timeout_s = run_timeout_s
        self._journal = journal
        self._lock = threading.Lock()
        self._token: str | None = None
        self._device: BaseDevice | None = None
        self._runs: dict[str, _Run] = {}

    # ---- calls into qrmi ------------------------------------------------------------------

    def _call(self, method: str, *args: Any) -> Any:
        """One qrmi call under the lock.

        Raises:
            BackendFailure: what the resource answered, classified (see `classify`).
        """
        with self._lock:
            try:
                return getattr(self._resource, method)(*args)
            except Exception as exc:  # qrmi raises its own QrmiError subclasses
                retryable, lapsed = classify(exc)
                raise QrmiFailure(f"QRMI {method}: {exc}", retryable, lapsed) from None

    def acquire(self) -> str:
        """Acquire the resource (once); QRMI reads the token from the environment."""
        if self._token is None:
            token = str(self._call("acquire"))
            os.environ[f"{self.resource_name}_QRMI_JOB_ACQUISITION_TOKEN"] = token
            self._token = token
            log.info("acquired QRMI resource %s (%s)", self.resource_name, token)
        return self._token

    def _reacquire(self) -> None:
        self._token = None
        self.acquire()

    # ---- port -----------------------------------------------------------------------------

    def device(self) -> BaseDevice:
        """The resource's device (``target``), fetched once; acquires the resource first."""
        if self._device is None:
            from schemas.sequence import load_device

            self.acquire()
            targets = json.loads(str(self._call("target").value))
            first = targets[0] if isinstance(targets, list) and targets else targets
            self._device = load_device(str(first["specs"]))
        return self._device

    def fetch_operational(self) -> bool:
        """Whether the resource says it is online."""
        try:
            status = self._call("status")
        except BackendFailure:
            return False
        return str(status.to_dict().get("status")) == "online"

    def start(self, request: RunRequest, reports: RunReports) -> None:
        """Start (or adopt) the run's task and follow it in a thread of its own."""
        run = _Run(request, reports)
        with self._lock:
            self._runs[request.job_id] = run
        threading.Thread(target=self._follow, args=(run,), daemon=True).start()

    def cancel(self, job_id: str) -> None:
        """Stop the run's task; its `finished` reports canceled."""
        run = self._runs.get(job_id)
        if run is None:
            return
        run.cancel_requested = True
        if run.task is not None:
            threading.Thread(target=self._stop, args=(run,), daemon=True).start()

    def close(self) -> None:
        """Release the resource."""
        token, self._token = self._token, None
        if token is not None:
            try:
                self._call("release", token)
                log.info("released QRMI resource %s", self.resource_name)
            except BackendFailure as exc:
                log.warning("QRMI release of %s failed: %s", self.resource_name, exc)

    # ---- one run --------------------------------------------------------------------------

    def _follow(self, run: _Run) -> None:
        job_id = run.request.job_id
        try:
            if run.cancel_requested:
                run.reports.finished(RunOutcome(job_id, canceled=True))
                return
            run.task = self._adoptable(run) or self._start_task(run)
            if run.cancel_requested:
                self._stop(run)
            deadline = time.monotonic() + self._run_timeout_s
            status = self._call("task_status", run.task)
            while status not in self._final:
                if time.monotonic() > deadline:
                    self._stop(run)
                    error = JobError(
                        code=ErrorCode.BACKEND_TIMEOUT,
                        message=f"QRMI task {run.task} passed the {self._run_timeout_s:g} s limit",
                        retryable=True,
                    )
                    run.reports.finished(RunOutcome(job_id, error=error))
                    return
                time.sleep(self._poll_s)
                status = self._call("task_status", run.task)
            run.reports.finished(self._outcome(run, status))
        except BackendFailure as exc:
            code = ErrorCode.BACKEND_UNAVAILABLE if exc.retryable else ErrorCode.BACKEND_ERROR
            error = JobError(code=code, message=str(exc), retryable=exc.retryable)
            run.reports.finished(RunOutcome(job_id, error=error))
        finally:
            with self._lock:
                self._runs.pop(job_id, None)

    @property
    def _final(self) -> tuple[Any, ...]:
        status = self._qrmi.TaskStatus
        return (status.Completed, status.Failed, status.Cancelled)

    def _start_task(self, run: _Run) -> str:
        payload = self._qrmi.Payload.PasqalCloud(
            sequence=run.request.sequence, job_runs=run.request.shots
        )
        self.acquire()
        try:
            task = str(self._call("task_start", payload))
        except QrmiFailure as exc:
            if not exc.lapsed:
                raise
            log.warning(
                "QRMI acquisition of %s lapsed (%s); acquiring again", self.resource_name, exc
            )
            self._reacquire()
            task = str(self._call("task_start", payload))
        self._record(run.request, task)
        return task

    def _outcome(self, run: _Run, status: Any) -> RunOutcome:
        job_id = run.request.job_id
        names = self._qrmi.TaskStatus
        if status == names.Completed:
            value = json.loads(str(self._call("task_result", run.task).value))
            counter = value.get("counter", {}) if isinstance(value, dict) else {}
            return RunOutcome(job_id, {str(k): int(v) for k, v in counter.items()})
        if status == names.Cancelled:
            return RunOutcome(job_id, canceled=True)
        error = JobError(
            code=ErrorCode.BACKEND_ERROR,
            message=f"QRMI task {run.task} failed: {self._logs(run.task)}",
            retryable=True,
        )
        return RunOutcome(job_id, error=error)

    def _logs(self, task: str | None) -> str:
        try:
            return str(self._call("task_logs", task))[-300:] or "no logs"
        except BackendFailure as exc:
            return f"no logs ({exc})"

    def _stop(self, run: _Run) -> None:
        if run.task is None or run.stop_sent:
            return
        run.stop_sent = True
        try:
            self._call("task_stop", run.task)
        except BackendFailure as exc:
            log.warning("QRMI task %s of %s not stopped: %s", run.task, run.request.job_id, exc)
            run.reports.note(run.request.job_id, f"QRMI refused to stop task {run.task}: {exc}")

    # ---- the journal (adoption) -----------------------------------------------------------

    def _record(self, request: RunRequest, task: str) -> None:
        if self._journal is None:
            return
        line = json.dumps({"job_id": request.job_id, "task": task, "shots": request.shots})
        with open(self._journal, "a", encoding="utf-8") as journal:
            journal.write(line + "\n")

    def _adoptable(self, run: _Run) -> str | None:
        """The task a dead owner started for this job, if it can still be followed."""
        if self._journal is None or not self._journal.exists():
            return None
        task = None
        for line in self._journal.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if (
                entry.get("job_id") == run.request.job_id
                and entry.get("shots") == run.request.shots
            ):
                task = str(entry.get("task"))
        if task is None:
            return None
        try:
            status = self._call("task_status", task)
        except BackendFailure:
            return None
        names = self._qrmi.TaskStatus
        if status in (names.Queued, names.Running, names.Completed):
            log.info("adopting QRMI task %s of job %s (%s)", task, run.request.job_id, status)
            run.reports.note(
                run.request.job_id, f"adopted QRMI task {task} ({status}) left by an earlier owner"
            )
            return task
        return None
