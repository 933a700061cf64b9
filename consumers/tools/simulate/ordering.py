"""The site ordering plugin in a simulation: each arrival's site term, asked as the owner asks.

The owner's gate (`consumers.plugins.gate`) asks the policy's ordering plugin for every new job
under the policy's time limit, and a job whose plugin call raised, overran or answered something
that is not a finite number is ordered without a site term. The simulation asks the plugin again
for every recorded arrival (an ordering plugin is pure), the same way, so a plugin that misbehaves
for some jobs orders them in the simulation as it did in the owner, and a plugin that hangs cannot
hang ``qsched simulate``. Only the ordering plugin is built: a simulation admits nobody and sends
no event anywhere, so the policy's admission plugins and event sinks are not loaded.
"""

from __future__ import annotations

import dataclasses

from consumers.core.inputs import Arrival
from consumers.core.state import OwnerState
from consumers.plugins.api import JobFacts, checked_term
from consumers.plugins.loading import build
from consumers.plugins.timed import PluginFailure, TimedCaller
from schemas.context import VerifiedContext
from schemas.policy import Policy


class OrderingHook:
    """An `ArrivalHook` giving each arrival the ordering plugin's term; counts its failures.

    Raises:
        PluginError: (when built) the plugin is not installed or its factory fails.
    """

    def __init__(self, policy: Policy) -> None:
        settings = policy.plugins
        assert settings.ordering is not None
        self.name = settings.ordering
        self.plugin = build("ordering", self.name, settings.options.get(self.name, {})).plugin
        self.caller = TimedCaller(self.name, settings.timeout_s)
        self.failures = 0

    def __call__(self, arrival: Arrival, state: OwnerState, policy: Policy) -> Arrival:
        """`arrival` with the plugin's term (None when the call failed, as in the owner)."""
        verified = arrival.verified or VerifiedContext.claimed(arrival.job.slurm)
        facts = JobFacts.of_request(arrival.job, arrival.user, verified)
        try:
            term: float | None = checked_term(self.caller.call(self.plugin.term, facts))
        except (PluginFailure, TypeError):
            self.failures += 1
            term = None
        return dataclasses.replace(arrival, site_term=term)


def ordering_hook(policy: Policy) -> OrderingHook | None:
    """The hook of the policy's ordering plugin, or None when the policy names none.

    Raises:
        PluginError: the plugin is not installed or cannot be built.
    """
    return OrderingHook(policy) if policy.plugins.ordering else None
