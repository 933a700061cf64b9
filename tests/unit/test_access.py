"""The least-privilege rules shared by the auth service and the owner (pure, no broker)."""

from __future__ import annotations

import grp
import os
import pwd

from brokers.access import (
    is_operator,
    permissions_for,
    resource_allowed,
    role_of,
    topic_allowed,
    unix_groups,
)
from schemas.policy import Policy

GROUPS = {"olga": {"users", "qpu-ops"}, "alice": {"users"}, "bob": {"users"}}
POLICY = Policy(operators=("root-admin",), operator_group="qpu-ops", epilog_users=("slurm",))


def groups_of(user: str) -> set[str]:
    return GROUPS.get(user, set())


def test_operators_are_named_or_members_of_the_policy_group() -> None:
    assert is_operator(POLICY, "root-admin", groups_of)
    assert is_operator(POLICY, "olga", groups_of)
    assert not is_operator(POLICY, "alice", groups_of)
    assert not is_operator(POLICY, None, groups_of)
    assert not is_operator(Policy(operators=()), "olga", groups_of)  # no group configured


def test_the_group_comes_from_the_system_group_database() -> None:
    me = pwd.getpwuid(os.getuid()).pw_name
    primary = grp.getgrgid(os.getgid()).gr_name
    assert primary in unix_groups(me)
    assert is_operator(Policy(operators=(), operator_group=primary), me)
    assert unix_groups("no-such-user-qsched") == frozenset()


def test_resource_and_topic_checks_follow_the_role() -> None:
    assert role_of(POLICY, "olga", groups_of) == "operator"
    assert role_of(POLICY, "slurm", groups_of) == "epilog"
    alice = permissions_for(POLICY, "alice", "qpu", groups_of)
    assert resource_allowed(alice, "exchange", "qpu.jobs", "write")
    assert resource_allowed(alice, "queue", "qpu.reply.alice.abc", "configure")
    assert resource_allowed(alice, "queue", "qpu.reply.alice.abc", "read")
    assert not resource_allowed(alice, "queue", "qpu.reply.bob.abc", "read")
    assert not resource_allowed(alice, "queue", "qpu.reply.alice", "configure")
    assert not resource_allowed(alice, "queue", "qpu.events.log", "read")
    assert not resource_allowed(alice, "exchange", "qpu.events", "write")
    assert not resource_allowed(alice, "queue", "qpu.reply.alice.x", "bogus")
    assert topic_allowed(alice, "qpu.control", "write", "control.cancel")
    assert not topic_allowed(alice, "qpu.control", "write", "control.pause")
    assert topic_allowed(alice, "qpu.jobs", "write", "anything")
    olga = permissions_for(POLICY, "olga", "qpu", groups_of)
    assert resource_allowed(olga, "queue", "qpu.events.log", "read")
    assert topic_allowed(olga, "qpu.control", "write", "control.pause")


def test_the_core_obeys_the_operator_flag_and_limits_epilog_users() -> None:
    from consumers.core.commands import Command, authorise
    from consumers.core.state import OwnerState
    from schemas.control import ControlCommand
    from schemas.enums import CommandName

    state = OwnerState.for_half_life(3600.0)
    pause = ControlCommand(command=CommandName.PAUSE)
    ended = ControlCommand(command=CommandName.ALLOCATION_ENDED, allocation="12")
    assert authorise(state, POLICY, Command(pause, "olga", operator=True)) is None
    refused = authorise(state, POLICY, Command(pause, "olga"))
    assert refused is not None and "operator only" in refused.message
    assert authorise(state, POLICY, Command(ended, "slurm")) is None
    epilog_pause = authorise(state, POLICY, Command(pause, "slurm"))
    assert epilog_pause is not None and "may send allocation-started, allocation-ended" in (
        epilog_pause.message
    )
    assert authorise(state, POLICY, Command(ended, "alice")) is not None
