"""Backend for the Pasqal on-premise QPU API (the one Warden drives), over HTTP.

Requests go through `_call`, which classifies failures the way the QPU API needs: 5xx, 429,
timeouts and refused connections are tried again (`max_attempts` tries per request, exponential
backoff); other 4xx are final and become a non-retryable error naming the API's message. Two time
limits bound a run: each request (`timeout_s`) and the whole run (`run_timeout_s`: submitting,
polling, retries included; the clock starts again while the API answers that the QPU is DOWN). Past the run's limit the API job is canceled and
the run fails BACKEND_TIMEOUT, retryable; whether the job runs again is the owner's retry budget
(policy `retry`), not this module's. Before submitting, the run waits while
``/system/operational`` says the QPU is not UP, and tells the owner (state DOWN). The API has no
push channel, so a running job is followed by polling ``GET /jobs/{uid}`` every `poll_s`; that
loop runs in the run's own thread, never on the owner's I/O loop.

Adoption. Every API job carries the qsched job id in its context. Before submitting, a run asks
``GET /jobs?qsched_job_id=ID`` for the API's jobs of that qsched job: one still PENDING or RUNNING
(or DONE with the shots asked for: its owner died before it could record the end) is adopted and
followed to its end instead of being submitted again, so a failover never runs a job twice on
the QPU. An API job this backend canceled itself (a run past its limit) is never adopted: it
may still read RUNNING for a moment after the cancel, and would end the job CANCELED.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from consumers.backends.base import (
    Backend,
    InvalidSequence,
    RunOutcome,
    RunReports,
    RunRequest,
    concrete_sequence,
)
from consumers.errors import BackendFailure
from schemas.enums import ErrorCode
from schemas.jobs import JobError

if TYPE_CHECKING:
    from pulser.devices._device_datacls import BaseDevice

log = logging.getLogger(__name__)
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
FINAL_STATES = frozenset({"DONE", "ERROR", "CANCELED"})


@dataclass
class _Run:
    request: RunRequest
    reports: RunReports
    uid: int | None = None
    cancel_requested: bool = False
    deadline: float = float("inf")  # time.monotonic() past which the run gives up


class QPUApiBackend(Backend):
    """Drives a QPU through its HTTP API.

    Args:
        base_url: e.g. ``http://qpu.example:8088`` (``/api/v1`` is appended).
        poll_s: interval between job status requests.
        timeout_s: per-request timeout.
        max_attempts: attempts per request for retryable failures.
        backoff_s: first retry delay; doubles up to `max_backoff_s`.
        run_timeout_s: time limit of a whole run (see the module docstring).
    """

    name = "qpu-api"

    def __init__(
        self,
        base_url: str,
        poll_s: float = 0.5,
        timeout_s: float = 10.0,
        max_attempts: int = 8,
        backoff_s: float = 0.1,
        max_backoff_s: float = 5.0,
        run_timeout_s: float = 3600.0,
    ) -> None:
        self._base = base_url.rstrip("/") + "/api/v1"
        self._poll_s = poll_s
        self._timeout_s = timeout_s
        self._max_attempts = max_attempts
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._run_timeout_s = run_timeout_s
        self._device: BaseDevice | None = None
        self._runs: dict[str, _Run] = {}
        self._lock = threading.Lock()
        # API jobs this backend asked to cancel: never adopted by a later run of the same job
        # (a canceled API job may still read RUNNING for a moment, then ends CANCELED).
        self._canceled_uids: set[int] = set()

    # ---- HTTP -----------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        payload: dict[str, Any] | None = None,
        run: _Run | None = None,
    ) -> Any:
        """One API request with retry classification; returns the ``data`` member.

        Args:
            run: the run the request serves; its time limit bounds every try and the backoff.

        Raises:
            RunExpired: the run's time limit passed.
            BackendFailure: a final 4xx (not retryable), or retries exhausted (retryable).
        """
        body = json.dumps(payload).encode() if payload is not None else None
        deadline = run.deadline if run is not None else float("inf")
        delay = self._backoff_s
        last = ""
        for attempt in range(1, self._max_attempts + 1):
            left_s = deadline - time.monotonic()
            if left_s <= 0:
                raise RunExpired(f"QPU API {method} {path}: {last or 'no answer in time'}")
            request = urllib.request.Request(
                self._base + path,
                data=body,
                method=method,
                headers={"Content-Type": "application/json"},
            )
            try:
                timeout_s = min(self._timeout_s, left_s)
                with urllib.request.urlopen(request, timeout=timeout_s) as response:
                    data = json.loads(response.read() or b"{}")
                    return data.get("data", {})
            except urllib.error.HTTPError as exc:
                text = exc.read().decode(errors="replace")[:300]
                if exc.code not in RETRYABLE_STATUS:
                    raise BackendFailure(
                        f"QPU API {method} {path} answered {exc.code}: {_message(text)}",
                        retryable=False,
                    ) from None
                last = f"{exc.code} {_message(text)}"
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
                last = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
            log.warning(
                "QPU API %s %s failed (%s), attempt %d/%d",
                method,
                path,
                last,
                attempt,
                self._max_attempts,
            )
            if attempt < self._max_attempts:
                time.sleep(max(min(delay, deadline - time.monotonic()), 0))
                delay = min(delay * 2, self._max_backoff_s)
        raise BackendFailure(
            f"QPU API {method} {path} kept failing ({self._max_attempts} tries): {last}",
            retryable=True,
        )

    # ---- port -----------------------------------------------------------------------------

    def device(self) -> BaseDevice:
        """The device the QPU reports at ``/system`` (fetched once, then cached)."""
        if self._device is None:
            from schemas.sequence import load_device

            specs = dict(self._call("GET", "/system"))["specs"]
            self._device = load_device(json.dumps(specs))
            self.device_taken_at = datetime.now(UTC)
        return self._device

    def fetch_operational(self, run: _Run | None = None) -> bool:
        """Whether ``/system/operational`` says UP."""
        status = dict(self._call("GET", "/system/operational", run=run))
        return status.get("operational_status") == "UP"

    def start(self, request: RunRequest, reports: RunReports) -> None:
        """Submit and follow the job in a thread of its own."""
        run = _Run(request, reports, deadline=time.monotonic() + self._run_timeout_s)
        with self._lock:
            self._runs[request.job_id] = run
        threading.Thread(target=self._follow, args=(run,), daemon=True).start()

    def _follow(self, run: _Run) -> None:
        job_id = run.request.job_id
        try:
            self._wait_operational(run)
            if run.cancel_requested:
                run.reports.finished(RunOutcome(job_id, canceled=True))
                return
            job = self._adoptable(run) or self._submit(run)
            run.uid = int(job["uid"])
            if run.cancel_requested:
                self._send_cancel(run)
            while job.get("status") not in FINAL_STATES:
                time.sleep(max(min(self._poll_s, run.deadline - time.monotonic()), 0))
                job = dict(self._call("GET", f"/jobs/{run.uid}", run=run))
            run.reports.finished(self._outcome(job_id, job))
        except RunExpired as exc:
            if run.uid is not None:
                self._send_cancel(run, quiet=True)
            message = f"the run passed its {self._run_timeout_s:g} s time limit ({exc})"
            error = JobError(code=ErrorCode.BACKEND_TIMEOUT, message=message, retryable=True)
            run.reports.finished(RunOutcome(job_id, error=error))
        except InvalidSequence as exc:
            run.reports.finished(RunOutcome(job_id, error=exc.error()))
        except BackendFailure as exc:
            code = ErrorCode.BACKEND_UNAVAILABLE if exc.retryable else ErrorCode.BACKEND_ERROR
            run.reports.finished(
                RunOutcome(
                    job_id, error=JobError(code=code, message=str(exc), retryable=exc.retryable)
                )
            )
        finally:
            with self._lock:
                self._runs.pop(job_id, None)

    def _submit(self, run: _Run) -> dict[str, Any]:
        request = run.request
        payload = {
            "nb_run": request.shots,
            "pulser_sequence": concrete_sequence(request),
            "context": {"qsched_job_id": request.job_id, "attempt": request.attempt},
        }
        return dict(self._call("POST", "/jobs", payload, run=run))

    def _adoptable(self, run: _Run) -> dict[str, Any] | None:
        """The API job of this qsched job that a dead owner left (see the module docstring)."""
        query = urllib.parse.urlencode({"qsched_job_id": run.request.job_id})
        found = self._call("GET", f"/jobs?{query}", run=run)
        jobs = [j for j in found if isinstance(j, dict)] if isinstance(found, list) else []
        for job in sorted(jobs, key=lambda j: int(j.get("uid", 0)), reverse=True):
            if int(job.get("uid", 0)) in self._canceled_uids:
                continue  # this owner gave up on it (a run time limit, a stop): submit anew
            status = job.get("status")
            if status in ("PENDING", "RUNNING") or (
                status == "DONE" and job.get("nb_run") == run.request.shots
            ):
                log.info(
                    "adopting QPU API job %s (%s) of job %s instead of submitting it again",
                    job.get("uid"),
                    status,
                    run.request.job_id,
                )
                run.reports.note(
                    run.request.job_id,
                    f"adopted QPU API job {job.get('uid')} ({status}) left by an earlier owner",
                )
                return job
        return None

    def _wait_operational(self, run: _Run) -> None:
        reported_down = False
        while not self.fetch_operational(run):
            run.deadline = time.monotonic() + self._run_timeout_s  # a DOWN QPU stops the clock
            if not reported_down:
                run.reports.operational(False, "QPU API reports the QPU is not operational")
                reported_down = True
            if run.cancel_requested:
                break
            time.sleep(self._poll_s)
        if reported_down:
            run.reports.operational(True, "QPU API reports the QPU is operational again")

    @staticmethod
    def _outcome(job_id: str, job: dict[str, Any]) -> RunOutcome:
        status = job.get("status")
        if status == "DONE":
            counter = json.loads(job.get("result") or "{}").get("counter", {})
            return RunOutcome(job_id, {str(k): int(v) for k, v in counter.items()})
        if status == "CANCELED":
            return RunOutcome(job_id, canceled=True)
        message = "; ".join(job.get("errors") or []) or "the QPU reported an error"
        return RunOutcome(
            job_id, error=JobError(code=ErrorCode.BACKEND_ERROR, message=message, retryable=True)
        )

    def _send_cancel(self, run: _Run, quiet: bool = False) -> None:
        if run.uid is not None:
            self._canceled_uids.add(run.uid)
        try:
            self._call("PUT", f"/jobs/{run.uid}/cancel")
        except BackendFailure as exc:
            if quiet:
                log.warning(
                    "QPU API job %s (uid %s) not canceled: %s", run.request.job_id, run.uid, exc
                )
                return
            log.warning(
                "QPU refused to cancel job %s (uid %s): %s", run.request.job_id, run.uid, exc
            )
            run.reports.note(
                run.request.job_id, f"cancel refused by the QPU, the job runs to its end: {exc}"
            )

    def cancel(self, job_id: str) -> None:
        """Ask the QPU to cancel; if it refuses, the job runs on and its results are kept."""
        with self._lock:
            run = self._runs.get(job_id)
        if run is None:
            return
        run.cancel_requested = True
        if run.uid is not None:
            threading.Thread(target=self._send_cancel, args=(run,), daemon=True).start()


class RunExpired(BackendFailure):
    """A run passed its time limit (`QPUApiBackend.run_timeout_s`)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


def _message(text: str) -> str:
    try:
        return str(json.loads(text).get("message", text))
    except (ValueError, AttributeError):
        return text
