"""Who may do what: the least-privilege rules shared by the broker's auth service and the owner.

Pure functions; the group database is an argument (`GroupsOf`), so a test passes a dict and a
site gets `unix_groups`, which asks the system (``getgrouplist``: LDAP/SSSD groups included).
The broker-side rules are `brokers.users.role_permissions`, the same regexes that
`qsched broker users add` installs for internal users, so both kinds of users get one policy.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
from collections.abc import Callable, Iterable

from brokers.users import Permissions, Role, role_permissions
from schemas.policy import Policy

GroupsOf = Callable[[str], Iterable[str]]


def unix_groups(user: str) -> frozenset[str]:
    """Names of every group `user` belongs to (primary and supplementary), from the system's
    group database; empty for an unknown user."""
    try:
        gid = pwd.getpwnam(user).pw_gid
        gids = os.getgrouplist(user, gid)
    except (KeyError, OSError):
        return frozenset()
    names = set()
    for g in gids:
        try:
            names.add(grp.getgrgid(g).gr_name)
        except KeyError:
            continue
    return frozenset(names)


def is_operator(policy: Policy, user: str | None, groups_of: GroupsOf = unix_groups) -> bool:
    """Whether `user` is an operator: named in ``operators`` or a member of ``operator_group``.

    Args:
        policy: the policy naming operators and their unix group.
        user: the authenticated user (AMQP ``user_id``); None is never an operator.
        groups_of: the groups of a user (the system's group database by default).
    """
    if user is None:
        return False
    if user in policy.operators:
        return True
    return policy.operator_group is not None and policy.operator_group in set(groups_of(user))


def role_of(policy: Policy, user: str, groups_of: GroupsOf = unix_groups) -> Role:
    """The broker role of a MUNGE-authenticated unix user: operator, epilog or submitter."""
    if is_operator(policy, user, groups_of):
        return "operator"
    if user in policy.epilog_users:
        return "epilog"
    return "submitter"


def resource_allowed(perms: Permissions, kind: str, name: str, permission: str) -> bool:
    """RabbitMQ's resource check: does `name` match the regex of `permission`?

    Args:
        perms: the user's permissions.
        kind: ``exchange`` or ``queue`` (``topic`` goes to `topic_allowed`).
        name: the resource name (the default exchange is ``amq.default``).
        permission: ``configure``, ``write`` or ``read``.
    """
    if kind not in ("exchange", "queue"):
        return False
    pattern = {"configure": perms.configure, "write": perms.write, "read": perms.read}.get(
        permission
    )
    return pattern is not None and re.match(pattern, name) is not None


def topic_allowed(perms: Permissions, exchange: str, permission: str, routing_key: str) -> bool:
    """RabbitMQ's topic check: exchanges without a topic rule allow every key (as internally)."""
    for topic in perms.topics:
        if topic.exchange == exchange:
            pattern = topic.write if permission == "write" else topic.read
            return re.match(pattern, routing_key) is not None
    return True


def permissions_for(
    policy: Policy, user: str, namespace: str, groups_of: GroupsOf = unix_groups
) -> Permissions:
    """The permissions the auth service enforces for a MUNGE-authenticated `user`."""
    return role_permissions(role_of(policy, user, groups_of), user, namespace)
