"""Opening the client's broker connection: URLs tried in turn, errors translated at the edge.

A refused user, password or vhost is not retried (`BrokerRefused`, or `NotAuthorised` for a MUNGE
login); an unreachable broker is retried on the next URL with a backoff of 0.2-5 s.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import amqp.exceptions
import kombu
import kombu.exceptions

from brokers.connection import classify_connect_error, connect_failure
from brokers.munge import MungeError, connection_url
from brokers.settings import Settings
from producers.errors import BrokerUnreachable, NotAuthorised

log = logging.getLogger("producers.client")
CONNECTION_ERRORS = (
    kombu.exceptions.OperationalError,
    amqp.exceptions.ConnectionError,
    ConnectionError,
    OSError,
)


def credentialed(url: str, settings: Settings) -> str:
    """`url` with this connection's credentials (a fresh MUNGE credential with munge auth).

    Raises:
        BrokerUnreachable: MUNGE could not make a credential.
    """
    try:
        return connection_url(url, settings.auth, settings.munge_socket)
    except MungeError as exc:
        raise BrokerUnreachable(f"cannot authenticate with MUNGE: {exc}") from exc


def open_connection(
    urls: Sequence[str],
    settings: Settings,
    setup: Callable[[kombu.Connection], None],
    attempts: int = 5,
) -> None:
    """Connect to `urls` in turn and hand the connection to `setup` (inside the same retry).

    Raises:
        BrokerRefused: the broker refused the login (not retried).
        NotAuthorised: the broker refused a MUNGE login.
        BrokerUnreachable: no URL answered within `attempts` tries.
    """
    user = settings.amqp_user
    delay = 0.2
    for attempt in range(1, attempts + 1):
        url = urls[(attempt - 1) % len(urls)]
        connection = kombu.Connection(credentialed(url, settings), heartbeat=0, connect_timeout=5)
        try:
            connection.ensure_connection(max_retries=1)
            setup(connection)
            return
        except amqp.exceptions.AccessRefused as exc:
            connection.release()
            if settings.auth != "munge":  # a password login: the generic explanation
                raise connect_failure(url, exc) from exc
            how = "is `qsched auth serve` reachable from the broker and munged running?"
            raise NotAuthorised(
                f"broker at {url.split('@')[-1]} refused the MUNGE login of {user!r} ({how}): {exc}"
            ) from exc
        except (*CONNECTION_ERRORS, amqp.exceptions.AMQPError) as exc:
            connection.release()
            if classify_connect_error(exc) != "unreachable":
                raise connect_failure(url, exc) from exc
            log.debug(
                "broker %s unreachable (%s), attempt %d/%d",
                url.split("@")[-1],
                exc,
                attempt,
                attempts,
            )
            if attempt == attempts:
                hosts = ", ".join(u.split("@")[-1] for u in urls)
                raise BrokerUnreachable(f"no broker answers at {hosts} ({exc})") from exc
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
