"""A plugin backend behind a guard: its failures become job errors, never the owner's.

The built-in backends are trusted; a third-party one is wrapped so that each call into it runs
under the plugin time limit (`TimedCaller`, its own thread). `start` that raises or hangs ends
the run with ``BACKEND_ERROR`` naming the plugin (the job gets that reason, in its ``job.error``
event and its result); `device` and `fetch_operational` failures are `BackendFailure`s, which
the owner already treats as a QPU that does not answer (it retries); a `cancel` that raises or
hangs is a note on the job, and its run is taken as stopped (so a stop never waits forever).
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from consumers.backends.base import Backend, RunOutcome, RunReports, RunRequest
from consumers.errors import BackendFailure
from consumers.plugins.timed import PluginFailure, TimedCaller
from schemas.enums import ErrorCode
from schemas.jobs import JobError

if TYPE_CHECKING:
    from pulser.devices._device_datacls import BaseDevice

DEVICE_TIMEOUT_FACTOR = 10  # reading specs may take longer than a start (a remote QPU)


class GuardedBackend(Backend):
    """Wraps a plugin's backend; see the module docstring."""

    def __init__(self, inner: Backend, plugin: str, timeout_s: float) -> None:
        self.inner = inner
        self.plugin = plugin
        self.name = inner.name
        self._calls = TimedCaller(f"backend-{plugin}", timeout_s)
        self._slow_calls = TimedCaller(f"backend-{plugin}-specs", timeout_s * DEVICE_TIMEOUT_FACTOR)
        self._reports: dict[str, RunReports] = {}

    def device(self) -> BaseDevice:
        """The plugin's device, or BackendFailure (retryable) when it raises or hangs."""
        try:
            device = self._slow_calls.call(self.inner.device)
        except PluginFailure as exc:
            raise BackendFailure(f"backend plugin {self.plugin}: {exc}", retryable=True) from exc
        if self.device_taken_at is None:  # the plugin's own clock is not asked (it may hang)
            self.device_taken_at = datetime.now(UTC)
        return device

    def fetch_operational(self) -> bool:
        """The plugin's answer, or BackendFailure (retryable) when it raises or hangs."""
        try:
            return bool(self._slow_calls.call(self.inner.fetch_operational))
        except PluginFailure as exc:
            raise BackendFailure(f"backend plugin {self.plugin}: {exc}", retryable=True) from exc

    def start(self, request: RunRequest, reports: RunReports) -> None:
        """Start the run; if the plugin raises or hangs, the run ends at once with the error."""
        self._reports = {request.job_id: reports}  # one run at a time
        try:
            self._calls.call(self.inner.start, request, reports)
        except PluginFailure as exc:
            error = JobError(
                code=ErrorCode.BACKEND_ERROR,
                message=f"backend plugin {self.plugin} could not start the run: {exc}",
                retryable=True,
            )
            reports.finished(RunOutcome(request.job_id, error=error))

    def cancel(self, job_id: str) -> None:
        """Ask the plugin to stop the run; a failure is a note on the job."""
        try:
            self._calls.call(self.inner.cancel, job_id)
        except PluginFailure as exc:
            reports = self._reports.get(job_id)
            if reports is not None:
                reports.note(job_id, f"backend plugin {self.plugin} could not cancel: {exc}")
                reports.finished(RunOutcome(job_id, canceled=True))

    def close(self) -> None:
        """Close the plugin's backend (within the time limit)."""
        with contextlib.suppress(PluginFailure):  # at exit: a backend that will not close is left
            self._calls.call(self.inner.close)
