"""`ClientSession`: the client's link to the broker, reopened as a whole on reconnect.

One kombu connection (py-amqp underneath) and one channel on it, carrying both directions: the
consumer of the client's reply queue (deliveries go to its `ReplyInbox`) and the
`ConfirmedPublisher`. Broker errors met while publishing are translated here (`NotDeclared`,
`NotAuthorised`); a lost connection is reopened on the next URL and the publish tried once more.
`QPUClient` owns one session and never touches the connection itself.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

import amqp.exceptions
import kombu
from kombu import Consumer, Queue

from brokers.settings import Settings
from brokers.topology import Topology
from producers.confirms import ConfirmedPublisher, Outgoing
from producers.connect import CONNECTION_ERRORS, credentialed, open_connection
from producers.errors import NotAuthorised, NotDeclared
from producers.replies import ReplyInbox

log = logging.getLogger("producers.client")


class ClientSession:
    """The connection, channel, reply consumer and confirmed publisher of one client.

    Args:
        settings: the client's settings (URLs, user, limits).
        topology: names of the exchanges and of the reply queue's arguments.
        reply_queue_name: the client's reply queue (declared here, consumed into `inbox`).
        inbox: where deliveries on the reply queue go.

    Raises:
        BrokerUnreachable: no URL answered (each is tried once).
        BrokerRefused: the broker refused the user, password or vhost.
    """

    def __init__(
        self,
        settings: Settings,
        topology: Topology,
        reply_queue_name: str,
        inbox: ReplyInbox,
    ) -> None:
        self.settings = settings
        self.topology = topology
        self.reply_queue_name = reply_queue_name
        self.inbox = inbox
        self.confirmed_at: dict[str, datetime] = {}  # of the last `publish`, when one refused
        self.urls = [u.strip() for u in settings.amqp_url.split(";") if u.strip()]
        self.connection: kombu.Connection | None = None
        self.open(attempts=len(self.urls))

    def open(self, attempts: int = 5) -> None:
        """Connect to the URLs in turn; a refused user or vhost is not retried."""
        open_connection(self.urls, self.settings, self._setup, attempts)

    def credentialed_url(self) -> str:
        """The first URL with this client's credentials (for side connections)."""
        return credentialed(self.urls[0], self.settings)

    def _setup(self, connection: kombu.Connection) -> None:
        self.connection = connection
        self.channel = connection.channel()
        self.publisher = ConfirmedPublisher(
            connection,
            self.channel,
            self.settings.amqp_user,
            self.reply_queue_name,
            self.settings.max_message_bytes,
        )
        transport = connection.connection  # py-amqp's: it receives connection.blocked
        transport.on_blocked = self.publisher.on_blocked
        transport.on_unblocked = self.publisher.on_unblocked
        queue = Queue(
            self.reply_queue_name,
            durable=False,
            auto_delete=False,
            queue_arguments=self.topology.reply_queue_arguments(),
            channel=self.channel,
        )
        queue.declare()
        self.consumer = Consumer(
            self.channel, queues=[queue], on_message=self.inbox.on_message, accept=None
        )
        self.consumer.consume()

    def owner_running(self) -> bool | None:
        """Whether an owner holds this namespace's QPU lease now (None: cannot tell).

        A passive declare of the lease queue on a channel of its own: RESOURCE_LOCKED means
        another connection holds it (an active owner), NOT_FOUND that none does. Nothing is
        sent to the owner, so nothing expires into the dead-letter queue when none runs.
        """
        if self.connection is None:
            self.open()
        assert self.connection is not None
        try:
            channel = self.connection.channel()
            channel.queue_declare(self.topology.lease_queue, passive=True)
        except amqp.exceptions.ResourceLocked:
            return True
        except amqp.exceptions.NotFound:
            return False
        except (amqp.exceptions.ChannelError, *CONNECTION_ERRORS):
            return None  # e.g. a user without access to the lease's name
        channel.close()
        return None

    def delete_reply_queue(self) -> None:
        """Delete the reply queue now (a call whose answers have all arrived); best effort."""
        if self.connection is None:
            return
        try:
            self.channel.queue_delete(self.reply_queue_name)
        except (amqp.exceptions.ChannelError, *CONNECTION_ERRORS):
            log.debug("could not delete %s; it expires on its own", self.reply_queue_name)

    def abandon(self, delete_reply_queue: bool) -> None:
        """Drop the connection without a word on it, after an interrupt (Ctrl-C) that may have
        stopped py-amqp in the middle of a frame: a request on it could then wait forever for
        an answer it can no longer read. The reply queue, when asked, is deleted over a new
        connection of its own (best effort, a few seconds at most; else it expires)."""
        if self.connection is not None:
            try:
                self.connection.collect()  # closes the socket; no Close/Close-Ok handshake
            except Exception:  # the socket is dropped either way
                log.debug("dropping the interrupted connection failed", exc_info=True)
            self.connection = None
        if not delete_reply_queue:
            return
        try:
            with kombu.Connection(
                self.credentialed_url(),
                heartbeat=0,
                connect_timeout=3,
                transport_options={"read_timeout": 3, "write_timeout": 3},
            ) as side:
                side.default_channel.queue_delete(self.reply_queue_name)
        except Exception:  # best effort: the queue expires on its own
            log.debug("could not delete %s; it expires on its own", self.reply_queue_name)

    def reconnect(self) -> None:
        """Open a new connection (next URL first) and resume reading the same reply queue."""
        self.close()
        self.urls = self.urls[1:] + self.urls[:1]
        self.open()

    def close(self) -> None:
        """Close the connection; the reply queue stays until it expires."""
        if self.connection is not None:
            self.connection.release()
            self.connection = None

    def poll(self, timeout: float) -> None:
        """Deliver whatever has arrived, waiting up to `timeout` seconds for something."""
        if self.connection is None:
            self.open()
        assert self.connection is not None
        try:
            self.connection.drain_events(timeout=timeout)
        except TimeoutError:
            pass
        except CONNECTION_ERRORS:
            log.warning("lost the broker; reconnecting")
            self.reconnect()

    def publish(self, batch: Sequence[Outgoing], timeout_s: float = 30.0) -> dict[str, datetime]:
        """Publish `batch` with a sliding window of unconfirmed messages; returns once every
        message is confirmed, with when the broker confirmed each (by message id).

        Raises:
            UnknownJobClass, QueueFull, NotAuthorised, NotDeclared, BrokerUnreachable.
        """
        for attempt in (1, 2):
            try:
                confirmed_at = self.publisher.publish_window(batch, timeout_s)
                break
            except amqp.exceptions.NotFound as exc:
                self.reconnect()
                raise NotDeclared(f"{batch[0].exchange} does not exist on this broker") from exc
            except amqp.exceptions.AccessRefused as exc:
                self.reconnect()
                user = self.settings.amqp_user
                raise NotAuthorised(
                    f"user {user!r} may not publish to {batch[0].exchange}: {exc}"
                ) from exc
            except CONNECTION_ERRORS:
                if attempt == 2:
                    raise
                # Publishing again may duplicate a job the broker had taken; the owner answers a
                # duplicate from its log and never runs a job twice.
                log.warning("lost the broker while publishing; reconnecting and publishing again")
                self.reconnect()
        self.confirmed_at = confirmed_at  # what was confirmed, if the refusals raise
        self.publisher.raise_refusals(batch, self.topology.class_names)
        return confirmed_at
