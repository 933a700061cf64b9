"""Broker users per role, with least-privilege permissions (DESIGN section 6).

`role_permissions` is pure: the RabbitMQ permission regexes (configure, write, read) and topic
permissions of one user in one role, for one namespace. `add_user` applies them with
``rabbitmqctl`` (the management plugin is not assumed: it is off on the sites we test on).

Why the user's name is written into the regexes: RabbitMQ 3.10 expands ``{username}`` /
``{vhost}`` only in *topic* permissions (``expand_topic_permission`` in
``rabbit_auth_backend_internal``), not in configure/write/read regexes, so each user gets
regexes of their own. The names are escaped with `re.escape`.

Roles:

- ``submitter``: publish jobs to ``<ns>.jobs`` (RabbitMQ checks their ``user_id``); declare and
  read only their own reply queues ``<ns>.reply.<user>.<id>``; read the owner's
  ``<ns>.device.specs`` (public device specs, for local validation: a stream, so reading removes
  nothing, and ``basic.get`` and purge are refused: a submitter cannot take the specs away); publish to ``<ns>.control`` only with the
  routing keys of `SUBMITTER_COMMANDS` (status, queue, show, jobs, and cancel, hold, release,
  update, requeue, result, history, which the owner allows a submitter on its own jobs only, and
  session-open, -close and -cancel of its own sessions). Not the event log, not other reply
  queues. A QRMI gateway's account is a submitter too (and named in the policy's
  ``gateway_users``, so the owner lets it act for the users whose MUNGE credentials it decoded).
- ``operator``: publish any command to ``<ns>.control``, read the event log and the dead letters
  (``<ns>.dead``: `qsched dead`), own reply queues.
- ``epilog``: the Slurm prolog's and epilog's account: ``control.allocation-started`` and
  ``control.allocation-ended`` only.
- ``owner``: every ``<ns>.*`` object, plus the default exchange for replies.
"""

from __future__ import annotations

import re
import secrets
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from brokers.errors import BrokerError

SUBMITTER_COMMANDS = (
    r"^control\.(cancel|status|queue|show|hold|release|update|requeue|result|history|jobs"
    r"|session-open|session-close|session-cancel)$"
)
Role = Literal["submitter", "operator", "epilog", "owner"]
ROLES: tuple[Role, ...] = ("submitter", "operator", "epilog", "owner")
NOTHING = "^$"


class UserSetupFailed(BrokerError):
    """rabbitmqctl refused or failed; the message has its output."""


@dataclass(frozen=True)
class TopicPermission:
    """Routing keys a user may publish (write) or bind/consume (read) on one topic exchange."""

    exchange: str
    write: str
    read: str


@dataclass(frozen=True)
class Permissions:
    """RabbitMQ permission regexes of one user in one vhost."""

    configure: str
    write: str
    read: str
    topics: tuple[TopicPermission, ...] = ()


def _any_of(*patterns: str) -> str:
    return "^(" + "|".join(patterns) + ")$"


def role_permissions(role: Role, user: str, namespace: str) -> Permissions:
    """The least-privilege permissions of `user` in `role` for `namespace`.

    Args:
        role: submitter, operator, epilog or owner.
        user: the broker user name (a unix user name with MUNGE auth).
        namespace: the qsched namespace (prefix of every name).

    Returns:
        Regexes for ``rabbitmqctl set_permissions`` and ``set_topic_permissions``.
    """
    ns = re.escape(namespace)
    own_replies = rf"{ns}\.reply\.{re.escape(user)}\.[^.]+"  # no dot: not user.x's queues
    control = rf"{ns}\.control"
    if role == "owner":
        return Permissions(
            configure=rf"^{ns}\..*$",
            write=_any_of(rf"{ns}\..*", r"amq\.default"),
            read=rf"^{ns}\..*$",
        )
    if role == "submitter":
        return Permissions(
            configure=_any_of(own_replies),
            write=_any_of(rf"{ns}\.jobs", control),
            read=_any_of(own_replies, rf"{ns}\.device\.specs"),
            topics=(TopicPermission(f"{namespace}.control", SUBMITTER_COMMANDS, NOTHING),),
        )
    if role == "operator":
        return Permissions(
            configure=_any_of(own_replies),
            write=_any_of(control),
            read=_any_of(
                own_replies, rf"{ns}\.events\.log", rf"{ns}\.device\.specs", rf"{ns}\.dead"
            ),
            topics=(TopicPermission(f"{namespace}.control", r"^control\..+$", NOTHING),),
        )
    if role == "epilog":
        return Permissions(
            configure=_any_of(own_replies),
            write=_any_of(control),
            read=_any_of(own_replies),
            topics=(
                TopicPermission(
                    f"{namespace}.control", r"^control\.allocation-(started|ended)$", NOTHING
                ),
            ),
        )
    raise ValueError(f"unknown role {role!r}; one of {', '.join(ROLES)}")


def new_password() -> str:
    """A fresh random password (32 URL-safe characters), never starting with ``-``
    (rabbitmqctl would read it as an option)."""
    while (password := secrets.token_urlsafe(24)).startswith("-"):
        pass
    return password


@dataclass
class Rabbitmqctl:
    """Runs ``rabbitmqctl`` against one node.

    Attributes:
        path: the rabbitmqctl executable.
        node: ``-n`` node name, or None for the default node.
        env: environment for the calls (a private node needs its own HOME and cookie).
    """

    path: Path
    node: str | None = None
    env: dict[str, str] | None = None
    timeout_s: float = 60.0

    def run(self, *args: str, secret: str | None = None) -> str:
        """Run one rabbitmqctl command; `secret` is hidden from error messages.

        Raises:
            UserSetupFailed: non-zero exit or timeout.
        """
        command = [str(self.path), *(["-n", self.node] if self.node else []), *args]
        try:
            done = subprocess.run(
                command,
                capture_output=True,
                text=True,
                env=self.env,
                # Erlang writes erl_crash.dump into the working directory when a call fails early.
                cwd=(self.env or {}).get("HOME") or tempfile.gettempdir(),
                timeout=self.timeout_s,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise UserSetupFailed(f"rabbitmqctl {args[0]}: {exc}") from exc
        if done.returncode != 0:
            shown = " ".join("***" if a == secret else a for a in args)
            output = (done.stderr or done.stdout).strip().splitlines()
            raise UserSetupFailed(f"rabbitmqctl {shown}: {' '.join(output[-3:])}")
        return done.stdout


def add_user(
    ctl: Rabbitmqctl,
    user: str,
    role: Role,
    namespace: str,
    vhost: str = "/",
    password: str | None = None,
) -> str:
    """Create `user` (or reset its password) with the permissions of `role`.

    Args:
        ctl: how to reach the node.
        user: broker user name.
        role: one of `ROLES`.
        namespace: qsched namespace the permissions cover.
        vhost: RabbitMQ virtual host.
        password: the password to set; a random one when None.

    Returns:
        The password that was set.

    Raises:
        UserSetupFailed: rabbitmqctl refused a step.
    """
    perms = role_permissions(role, user, namespace)
    secret = password or new_password()
    existing = {
        line.split("\t")[0] for line in ctl.run("list_users", "--silent").splitlines() if line
    }
    # After "--" no value is read as an option, whatever it starts with.
    if user in existing:
        ctl.run("change_password", "--", user, secret, secret=secret)
    else:
        ctl.run("add_user", "--", user, secret, secret=secret)
    vhosts = {line.strip() for line in ctl.run("list_vhosts", "--silent").splitlines()}
    if vhost not in vhosts:
        ctl.run("add_vhost", vhost)
    ctl.run("set_permissions", "-p", vhost, user, perms.configure, perms.write, perms.read)
    ctl.run("clear_topic_permissions", "-p", vhost, user)
    for topic in perms.topics:
        ctl.run("set_topic_permissions", "-p", vhost, user, topic.exchange, topic.write, topic.read)
    return secret
