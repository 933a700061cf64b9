"""The owner's side of operator membership: the policy's ``operators`` or ``operator_group``.

The rule is `brokers.access.is_operator` (pure; shared with the broker's auth service, so the
broker and the owner agree on who is an operator). The group database is I/O, so the shell
(`consumers.owner.control`) resolves it here and hands the core a flag (`Command.operator`); what each
role may send is the core's command table (`consumers.core.commands`).
"""

from __future__ import annotations

from brokers.access import GroupsOf, is_operator, unix_groups

__all__ = ["GroupsOf", "is_operator", "unix_groups"]
