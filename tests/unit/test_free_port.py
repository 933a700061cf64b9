"""Private nodes take ports no outgoing connection can be given (a restarted node keeps its port)."""

from __future__ import annotations

import socket

from brokers.bootstrap import _ephemeral_low, free_port


def test_free_ports_are_below_the_ephemeral_range_and_bindable() -> None:
    low = _ephemeral_low()
    for _ in range(20):
        port = free_port()
        assert 10_000 <= port < low
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))  # nothing holds it
