"""A real OpenTelemetry collector for the trace tests: rotel (a collector written in Rust, shipped
as a binary in the `rotel` wheel of the dev extras), taking OTLP over gRPC and HTTP on loopback
ports and printing every span it receives (its debug log), which `tests.support.traces.parse_rotel`
reads back. Nothing of it is Python: what it accepts is what any OTLP collector would."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.traces import Span, parse_rotel


def rotel_agent() -> Path:
    """The rotel-agent binary inside the installed `rotel` package."""
    import rotel

    return Path(rotel.__file__).parent / "rotel-agent"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class Rotel:
    """rotel-agent on two free loopback ports; a context manager (SIGTERM at exit)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.grpc_port, self.http_port = _free_port(), _free_port()
        self.output = workdir / "rotel-spans.txt"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def grpc_endpoint(self) -> str:
        """Where OTLP/gRPC goes (``OTEL_EXPORTER_OTLP_ENDPOINT`` with protocol grpc)."""
        return f"http://127.0.0.1:{self.grpc_port}"

    @property
    def http_endpoint(self) -> str:
        """Where OTLP/HTTP goes (``OTEL_EXPORTER_OTLP_ENDPOINT`` with protocol http/protobuf)."""
        return f"http://127.0.0.1:{self.http_port}"

    def __enter__(self) -> Rotel:
        command = [
            str(rotel_agent()),
            "start",
            "--exporter",
            "blackhole",
            "--debug-log",
            "traces",
            "--debug-log-verbosity",
            "detailed",
            "--otlp-grpc-endpoint",
            f"127.0.0.1:{self.grpc_port}",
            "--otlp-http-endpoint",
            f"127.0.0.1:{self.http_port}",
            "--pid-file",
            str(self.workdir / "rotel.pid"),
            "--log-file",
            str(self.workdir / "rotel.log"),
        ]
        with self.output.open("wb") as out:
            self._process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while not (_listening(self.grpc_port) and _listening(self.http_port)):
            if self._process.poll() is not None:
                raise AssertionError(f"rotel-agent exited: {self.output.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise AssertionError("rotel-agent did not listen within 30 s")
            time.sleep(0.05)
        return self

    def text(self) -> str:
        """Everything rotel printed so far."""
        return self.output.read_text(errors="replace")

    def spans(self) -> list[Span]:
        """The spans rotel printed so far."""
        return parse_rotel(self.text())

    def wait_for(
        self, predicate: Callable[[list[Span]], bool], timeout_s: float, what: str
    ) -> None:
        """Poll rotel's output until `predicate(spans)` holds; fail naming what came instead."""
        deadline = time.monotonic() + timeout_s
        while not predicate(spans := self.spans()):
            if time.monotonic() > deadline:
                names = sorted({(s.service, s.name) for s in spans})
                raise AssertionError(f"no {what} within {timeout_s} s; rotel got {names}")
            time.sleep(0.2)

    def __exit__(self, *exc: Any) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
