"""A loopback TCP proxy that can stall or drop the connections going through it.

Chaos tests put it between one owner and the broker (the owner's AMQP URL names the proxy's
port) to cut that owner's connection without touching the broker: `stall` stops forwarding in
both directions while every socket stays open (a switch that silently stops passing packets),
`resume` lets the held bytes through again, `drop` resets every connection at once (the owner
reconnects through the proxy, which keeps accepting).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Iterator


class TcpProxy:
    """Forwards 127.0.0.1:`port` to `target` (host, port), one thread per direction."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._forwarding = threading.Event()
        self._forwarding.set()
        self._closed = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.accepted = 0
        threading.Thread(target=self._accept, daemon=True, name="tcpproxy-accept").start()

    def url_of(self, url: str) -> str:
        """`url` (an amqp:// URL to the target) pointed at this proxy instead."""
        host, port = self.target
        return url.replace(f"{host}:{port}", f"127.0.0.1:{self.port}")

    def stall(self) -> None:
        """Stop forwarding (both ways, new connections too); sockets stay open."""
        self._forwarding.clear()

    def resume(self) -> None:
        """Forward again, starting with what was held."""
        self._forwarding.set()

    def drop(self) -> int:
        """Reset every connection now (RST, not FIN); returns how many sockets were reset."""
        with self._lock:
            doomed, self._sockets = self._sockets, []
        for sock in doomed:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            with contextlib.suppress(OSError):
                sock.close()
        return len(doomed)

    def close(self) -> None:
        """Stop accepting and reset everything."""
        self._closed = True
        self._forwarding.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        self.drop()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
                self.accepted += 1
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            for data in _chunks(src):
                self._forwarding.wait()
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def _chunks(sock: socket.socket) -> Iterator[bytes]:
    while True:
        data = sock.recv(65536)
        if not data:
            return
        yield data
