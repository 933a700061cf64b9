"""Admission and ordering plugins at the owner's edge: asked before a job enters the core.

A new job's `Arrival` goes through `Gate.review` before `step`: the admission plugins are asked
in the policy's order (the first refuse or hold wins), and the ordering plugin gives the job's
site term. Their answers ride on the `Arrival` (a refusal as its `problem`, a hold, the term),
so the core stays pure and the log records what was decided. Held jobs are asked again every
`recheck_s` (`Gate.recheck`), which yields `Readmitted` inputs.

Each plugin call runs under the policy's time limit (`consumers.plugins.timed`). A plugin that
raises, overruns, or answers nonsense gives a ``plugin.failed`` event naming the job, and the
job gets the policy's `on_error`: held with the failure as its reason (asked again later), refused
(retryable), or accepted as if the plugin had said yes. A failing ordering plugin leaves the job
without a site term (0). The owner goes on either way.
"""

from __future__ import annotations

import time
from dataclasses import replace

from consumers.core.context import verify
from consumers.core.inputs import Arrival, Readmitted
from consumers.core.policy import validate_admission
from consumers.core.state import OwnerState
from consumers.plugins.api import Admit, JobFacts, Verdict, checked_term, checked_verdict
from consumers.plugins.loading import Loaded, Plugins
from consumers.plugins.timed import PluginFailure, TimedCaller
from schemas.context import VerifiedContext
from schemas.enums import ErrorCode
from schemas.envelope import Event
from schemas.events import PluginFailed, Topic, make_event
from schemas.jobs import JobError
from schemas.policy import Policy

RECHECK_BATCH = 100  # held jobs asked again per loop turn at most (bounds a turn's time)
MAX_FAILED_BACKOFF = 64  # a job whose asks keep failing is asked at most every 64 x recheck_s


def failure_event(
    point: str, name: str, error: str, facts: JobFacts | None = None, dropped: int = 0
) -> Event:
    """The ``plugin.failed`` event of a plugin call (naming the job it was about, if any)."""
    lost = f"; {dropped} events lost" if dropped else ""
    return make_event(
        Topic.PLUGIN_FAILED,
        PluginFailed(point=point, plugin=name, error=error, dropped=dropped),
        job_id=facts.job_id if facts else None,
        job_class=facts.job_class if facts else None,
        user=facts.user if facts else None,
        reason=f"{point} plugin {name} failed: {error}{lost}",
    )


class Gate:
    """Asks the admission and ordering plugins about jobs, each call time-limited."""

    def __init__(self, plugins: Plugins) -> None:
        self.plugins = plugins
        self.settings = plugins.settings
        self._callers = {
            id(loaded): TimedCaller(loaded.name, self.settings.timeout_s)
            for loaded in (*plugins.admission, plugins.ordering)
            if loaded is not None
        }
        self._next_ask: dict[str, float] = {}
        self._failed_asks: dict[str, int] = {}  # consecutive failed asks (raised or hung) per job
        self._scanned = 0  # id() of the state last scanned for holds

    @property
    def active(self) -> bool:
        """Whether there is anything to ask."""
        return bool(self.plugins.admission or self.plugins.ordering)

    def review(
        self, arrival: Arrival, state: OwnerState, policy: Policy
    ) -> tuple[Arrival, list[Event]]:
        """The arrival with the plugins' answers on it, and the failures to log.

        Jobs the core refuses anyway (a problem already, a duplicate id, a class they may not
        use, a context it cannot verify) are not put to the plugins, nor jobs whose allocation
        is not registered yet. Plugins see the verified account and allocation only.
        """
        job = arrival.job
        if (
            not self.active
            or arrival.problem is not None
            or state.owner_of(job.job_id) is not None
            or validate_admission(policy, job.job_class, arrival.user, job.shots) is not None
        ):
            return arrival, []
        context = verify(state, policy, job, arrival.user)
        if not isinstance(context, VerifiedContext):
            return arrival, []  # refused, or kept for its allocation: asked once it is known
        facts = JobFacts.of_request(job, arrival.user, context)
        verdict, name, failures = self._admit(facts)
        term, more = self._term(facts)
        failures += more
        if verdict.action is Admit.REFUSE:
            return replace(arrival, problem=self._refusal(name, verdict.reason)), failures
        hold = (
            f"admission plugin {name}: {verdict.reason}" if verdict.action is Admit.HOLD else None
        )
        if hold is not None:
            self._next_ask[job.job_id] = time.monotonic() + self.settings.recheck_s
        return replace(arrival, hold=hold, site_term=term), failures

    def recheck(self, state: OwnerState) -> tuple[list[Readmitted], list[Event]]:
        """Held jobs whose time to be asked again has come, with the plugins' new answers."""
        if not self.plugins.admission:
            return [], []
        now_s = time.monotonic()
        if self._scanned != id(state):  # a new activation: holds the log knows of, asked soon
            self._scanned = id(state)
            for held in state.waiting.values():
                if held.admission_hold is not None:
                    self._next_ask.setdefault(held.job_id, now_s)
        due = [job_id for job_id, at_s in self._next_ask.items() if at_s <= now_s]
        inputs: list[Readmitted] = []
        failures: list[Event] = []
        for job_id in due[:RECHECK_BATCH]:
            if any(self._callers[id(loaded)].busy for loaded in self.plugins.admission):
                break  # a plugin still inside an overrun call: ask the others once it is free
            job = state.waiting.get(job_id)
            if job is None or job.admission_hold is None:
                del self._next_ask[job_id]
                continue
            verdict, name, more = self._admit(JobFacts.of_waiting(job))
            if verdict.action is not Admit.HOLD or self._hold(name, verdict) != job.admission_hold:
                failures += more  # the same failure again on a held job is not news
            if verdict.action is Admit.REFUSE:
                inputs.append(Readmitted(job_id, refusal=self._refusal(name, verdict.reason)))
                del self._next_ask[job_id]
            elif verdict.action is Admit.HOLD:
                inputs.append(Readmitted(job_id, hold=self._hold(name, verdict)))
                # A job whose asks keep failing is asked less often and after the others (so a
                # job that hangs its plugin does not keep the plugin busy for every other job).
                failed = self._failed_asks[job_id] = (
                    self._failed_asks.get(job_id, 0) + 1 if more else 0
                )
                del self._next_ask[job_id]
                factor = min(2**failed, MAX_FAILED_BACKOFF) if failed else 1
                self._next_ask[job_id] = time.monotonic() + self.settings.recheck_s * factor
            else:
                inputs.append(Readmitted(job_id))
                del self._next_ask[job_id]
            if job_id not in self._next_ask:
                self._failed_asks.pop(job_id, None)
        return inputs, failures

    # ---- one ask -------------------------------------------------------------------------------

    def _admit(self, facts: JobFacts) -> tuple[Verdict, str, list[Event]]:
        """The first refusal or hold of the admission plugins (else accept), the plugin that
        gave it, and the failures met on the way."""
        failures: list[Event] = []
        for loaded in self.plugins.admission:
            try:
                answer = self._callers[id(loaded)].call(loaded.plugin.admit, facts)
                verdict = checked_verdict(answer)
            except (PluginFailure, TypeError) as exc:
                failures.append(failure_event("admission", loaded.name, str(exc), facts))
                verdict = self._on_error(loaded, str(exc))
            if verdict.action is not Admit.ACCEPT:
                return verdict, loaded.name, failures
        return Verdict.accept(), "", failures

    @staticmethod
    def _hold(name: str, verdict: Verdict) -> str:
        return f"admission plugin {name}: {verdict.reason}"

    def _on_error(self, loaded: Loaded, error: str) -> Verdict:
        on_error = self.settings.on_error
        if on_error == "accept":
            return Verdict.accept()
        reason = f"failed ({error})"
        if on_error == "hold":
            return Verdict.hold(f"{reason}; asked again every {self.settings.recheck_s:g} s")
        return Verdict.refuse(f"{reason}; try again later")

    def _refusal(self, name: str, reason: str) -> JobError:
        return JobError(
            code=ErrorCode.ADMISSION_REFUSED,
            message=f"refused by admission plugin {name}: {reason}",
            retryable=reason.startswith("failed ("),
            details={"plugin": name},
        )

    def _term(self, facts: JobFacts) -> tuple[float | None, list[Event]]:
        loaded = self.plugins.ordering
        if loaded is None:
            return None, []
        try:
            return checked_term(self._callers[id(loaded)].call(loaded.plugin.term, facts)), []
        except (PluginFailure, TypeError) as exc:
            error = f"{exc}; the job is ordered without a site term"
            return None, [failure_event("ordering", loaded.name, error, facts)]
