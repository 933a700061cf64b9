"""One control command to the owner and its reply, over a short pika connection.

For callers that must not import the client SDK (`consumers.tools.eventlog`'s ``qsched history``, by
the folder rules of DESIGN section 2) or cannot afford its import time (the Slurm Epilog's
``allocation-ended``). It declares a reply queue of the sender's own (``<ns>.reply.<user>.*``,
the only queues a submitter may declare), publishes the command confirmed, with the sender's
``user_id`` and an expiration equal to the timeout (a command no owner took expires unapplied),
and waits for the reply.
"""

from __future__ import annotations

import time
import uuid

import pika
import pika.exceptions

from brokers.connection import connect, properties
from brokers.errors import BrokerError
from brokers.munge import connection_url
from brokers.settings import Settings
from brokers.topology import Topology
from schemas.codec import decode, encode
from schemas.control import ControlCommand, ControlReply
from schemas.errors import DecodeError


class CommandNotRouted(BrokerError):
    """The broker refused the command (no control exchange, or no permission for it)."""


def ask_owner(
    settings: Settings, topology: Topology, command: ControlCommand, timeout_s: float
) -> ControlReply | None:
    """Send `command` and wait for the owner's reply.

    Returns:
        The reply (``ok`` or a refusal), or None when no owner answered within `timeout_s`.

    Raises:
        BrokerUnavailable: no connection (from `connect`).
        CommandNotRouted: the broker refused the publish (e.g. 403 on the routing key).
    """
    url = connection_url(settings.amqp_url, settings.auth, settings.munge_socket)
    user = settings.amqp_user
    conn = connect(url, name=f"qsched-ask {command.command.value}")
    try:
        ch = conn.channel()
        reply_queue = topology.reply_queue(user, f"ask-{uuid.uuid4().hex[:12]}")
        ch.queue_declare(reply_queue, exclusive=True, auto_delete=True)
        ch.confirm_delivery()
        props = properties(
            command, message_id=command.command_id, user_id=user, reply_to=reply_queue
        )
        props.expiration = str(max(int(timeout_s * 1000), 1))
        try:
            ch.basic_publish(
                topology.control_exchange,
                f"control.{command.command.value}",
                encode(command, settings.max_message_bytes),
                props,
                mandatory=True,
            )
        except (pika.exceptions.UnroutableError, pika.exceptions.NackError) as exc:
            raise CommandNotRouted(
                f"{command.command.value}: the broker refused it ({exc})"
            ) from exc
        except pika.exceptions.ChannelClosedByBroker as exc:
            raise CommandNotRouted(f"{command.command.value}: {exc.reply_text}") from exc
        deadline = time.monotonic() + timeout_s
        for method, props_in, body in ch.consume(reply_queue, inactivity_timeout=0.1):
            if method is not None:
                ch.basic_ack(method.delivery_tag)
                try:
                    reply = decode(body, props_in.type, ControlReply, settings.max_message_bytes)
                except DecodeError:
                    continue
                if reply.command_id == command.command_id:
                    return reply
            if time.monotonic() > deadline:
                return None
        return None
    finally:
        if conn.is_open:
            conn.close()
