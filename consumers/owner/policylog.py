"""Which policy an activating owner runs: the one in force in the log, never silently its file's.

Every activation writes the policy it runs into its ``owner.activated`` event (the TOML text),
and every accepted ``reload-policy`` writes the text it loaded into its control event, so the
log always says which policy is in force (`OwnerState.policy`). A standby started with another
policy file than the active owner's would otherwise change the policy at failover without
anyone asking. So at activation:

- the log names no policy (a new log, or one written before policies were logged): this
  owner's file (or the defaults) goes into force, and into the log;
- the log's policy equals this owner's file: nothing to decide;
- they differ: the log's policy stays in force, and the owner says so in its log (a warning
  naming its file); an operator changes the policy on purpose with ``qsched ctl
  reload-policy``, which makes the active owner load its own file, logged like every command;
- the log's policy has another set of job classes than this owner's file: the owner refuses to
  activate (each class is a queue it consumes; the same rule as `reload-policy`) and stands by
  again, saying why, so that an owner started with the right classes takes over.
"""

from __future__ import annotations

import logging
from pathlib import Path

from consumers.errors import OwnerError
from consumers.owner.control import policy_text
from schemas.errors import PolicyError
from schemas.policy import Policy, parse_policy

log = logging.getLogger(__name__)


class PolicyMismatch(OwnerError):
    """The log's policy has other job classes than this owner's file: it does not activate."""


def policy_in_force(
    own: Policy, own_path: Path | None, logged: str | None
) -> tuple[Policy, str | None]:
    """The policy an activating owner runs, and its text for the ``owner.activated`` event.

    Args:
        own: the policy of this owner's file (or the defaults).
        own_path: that file (None: the defaults).
        logged: the policy in force as the log has it (`OwnerState.policy`).

    Raises:
        PolicyMismatch: the log's policy has another set of classes than `own`.
    """
    own_text = policy_text(own_path)
    if logged is None or logged == own_text:
        return own, own_text
    try:
        policy = parse_policy(logged)
    except PolicyError as exc:  # a log written by a newer or broken owner: say it, keep ours
        log.error("policy: the log's policy does not parse (%s); %s goes into force", exc, own_path)
        return own, own_text
    if set(policy.classes) != set(own.classes):
        raise PolicyMismatch(
            f"the policy in force in the log has classes {sorted(policy.classes)}, this owner's "
            f"{own_path or 'default policy'} has {sorted(own.classes)}; not activating: start "
            "this owner with the log's classes, or change them on the active owner first"
        )
    log.warning(
        "policy: this owner's %s differs from the policy in force in the log; the log's policy "
        "stays in force (send `qsched ctl reload-policy` to load this owner's file)",
        own_path or "default policy",
    )
    return policy, logged


class PolicyInForce:
    """The one place an owner process holds its policy: its file's (or the defaults) at start,
    the log's once active (`policy_in_force`), a reloaded one after ``reload-policy``. The
    shell, the intake and the effects read `policy` here, so a reload changes it everywhere.

    Args:
        policy: this owner's file's policy (or the defaults).
        path: that file (None: the defaults).
    """

    def __init__(self, policy: Policy, path: Path | None) -> None:
        self.policy = policy
        self.path = path

    def activate(self, logged: str | None) -> str | None:
        """Put in force the policy an activating owner runs (`policy_in_force`, from this
        policy and the log's); its text for the ``owner.activated`` event."""
        self.policy, text = policy_in_force(self.policy, self.path, logged)
        return text
