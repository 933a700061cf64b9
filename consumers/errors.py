"""Errors of the owner; each carries what a log line or an operator needs."""

from __future__ import annotations


class OwnerError(Exception):
    """Root of every error raised by `consumers`."""


class IllegalTransition(OwnerError):
    """An event that the QPU state machine does not allow in its current state."""

    def __init__(self, state: str, event: str, busy: bool) -> None:
        job = "a job on the QPU" if busy else "no job on the QPU"
        super().__init__(f"event {event} is not allowed in state {state} with {job}")
        self.state = state
        self.event = event
        self.busy = busy


class Ignored(OwnerError):
    """An event the state's fold cannot use (a stale term, a job that is not where the event
    says, an illegal move), and why; `OwnerState.apply` records it and goes on."""


class BackendFailure(OwnerError):
    """A backend could not do what was asked; `retryable` says whether trying again may help."""

    def __init__(self, message: str, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class MetricsUnavailable(OwnerError):
    """The metrics endpoint cannot listen where the settings say."""

    exit_code = 1
    hint = (
        "choose another owner.metrics_port / owner.metrics_bind (QSCHED_OWNER__METRICS_PORT, "
        "QSCHED_OWNER__METRICS_BIND), or unset the port"
    )


class PolicyFileInvalid(OwnerError):
    """The policy file an owner was given is not a policy: its problems were printed as
    `qsched policy check` prints them (``FILE:LINE: error: what``); a usage error."""

    exit_code = 2
    hint = "fix them; `qsched policy check FILE` checks a file without starting an owner"
