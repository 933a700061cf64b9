"""Which exporter, protocol and endpoint the OTEL_* variables choose, and how failed exports are
said: one line at the first failure, none for the next ones, one when it ends."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from brokers.errors import TracingError
from brokers.otlp import (
    ReportingExporter,
    Target,
    endpoint_of,
    probe,
    probe_grpc,
    probe_http,
    protocol_of,
    target_of,
)
from brokers.tracing import exporters_of, span_name


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, []),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, ["otlp"]),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, ["otlp"]),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, ["otlp"]),
        ({"OTEL_TRACES_EXPORTER": "console, otlp"}, ["console", "otlp"]),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"}, []),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}, []),
    ],
)
def test_exporters_follow_the_standard_variables(
    environ: dict[str, str], expected: list[str]
) -> None:
    assert exporters_of(environ) == expected


def test_an_exporter_qsched_does_not_ship_is_a_one_line_error() -> None:
    with pytest.raises(TracingError, match="zipkin is not an exporter"):
        exporters_of({"OTEL_TRACES_EXPORTER": "zipkin"})


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, Target("http/protobuf", "http://localhost:4318/v1/traces")),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, Target("grpc", "http://localhost:4317")),
        (
            {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"},
            Target("grpc", "http://c:4317"),
        ),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/"},
            Target("http/protobuf", "http://c:4318/v1/traces"),
        ),
        (  # the per-signal variables win over the general ones
            {
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc",
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t:4317",
            },
            Target("grpc", "http://t:4317"),
        ),
        (  # a per-signal HTTP endpoint is used as it is, path included
            {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t:9/custom"},
            Target("http/protobuf", "http://t:9/custom"),
        ),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "HTTP/JSON"}, Target("http/json", endpoint_of("http"))),
    ],
)
def test_protocol_and_endpoint_follow_the_standard_variables(
    environ: dict[str, str], expected: Target
) -> None:
    assert target_of(environ) == expected


def test_an_unknown_protocol_names_the_variable_and_the_choices() -> None:
    with pytest.raises(TracingError, match="OTEL_EXPORTER_OTLP_TRACES_PROTOCOL='thrift'"):
        protocol_of({"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "thrift"})


class Scripted(SpanExporter):
    """An exporter whose answers are given in advance."""

    def __init__(self, answers: list[bool]) -> None:
        self.answers = answers

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        ok = self.answers.pop(0)
        return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE

    def shutdown(self) -> None:
        return None


SPANS: Any = [object(), object(), object()]
TARGET = Target("grpc", "http://127.0.0.1:1")


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "qsched.tracing"]


def test_failed_exports_are_one_line_then_counted_then_summed_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    exporter = ReportingExporter(Scripted([False, False, False]), TARGET)
    for _ in range(3):
        assert exporter.export(SPANS) is SpanExportResult.FAILURE
    assert len(_lines(caplog)) == 1 and "could not export 3 spans" in _lines(caplog)[0]
    exporter.shutdown()
    assert len(_lines(caplog)) == 2
    assert "9 spans in all were not exported to OTLP endpoint grpc" in _lines(caplog)[1]
    assert exporter.lost_total == 9


def test_a_recovered_endpoint_is_said_with_what_was_lost(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    exporter = ReportingExporter(Scripted([False, True, True]), TARGET)
    for _ in range(3):
        exporter.export(SPANS)
    exporter.shutdown()
    lines = _lines(caplog)
    assert len(lines) == 2 and "answers; 3 spans were lost" in lines[1]


def test_a_probe_warning_is_the_only_line_until_the_end(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    exporter = ReportingExporter(Scripted([False]), TARGET)
    exporter.announce("cannot be reached (refused)")
    exporter.announce("cannot be reached (refused)")
    exporter.export(SPANS)
    assert len(_lines(caplog)) == 1 and "cannot be reached" in _lines(caplog)[0]
    exporter.shutdown()
    assert "3 spans in all were not exported" in _lines(caplog)[-1]


def test_a_healthy_exporter_says_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    exporter = ReportingExporter(Scripted([True, True]), TARGET)
    exporter.export(SPANS)
    exporter.export(SPANS)
    exporter.shutdown()
    assert _lines(caplog) == []


# ---- the probe, against real sockets ---------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def http_server() -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP server: 200 on /v1/traces, 404 elsewhere; the paths it was asked."""
    paths: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            paths.append(self.path)
            self.send_response(200 if self.path == "/v1/traces" else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", paths
    server.shutdown()
    server.server_close()


def test_http_probe_accepts_a_traces_endpoint_and_names_a_wrong_one(
    http_server: tuple[str, list[str]],
) -> None:
    base, paths = http_server
    assert probe_http(f"{base}/v1/traces", {}, 2.0) is None
    assert "HTTP 404" in (probe_http(f"{base}/v1/metrics", {}, 2.0) or "")
    assert paths == ["/v1/traces", "/v1/metrics"]


def test_probes_say_an_unreachable_endpoint_cannot_be_reached() -> None:
    port = _closed_port()
    assert "cannot be reached" in (probe_http(f"http://127.0.0.1:{port}/v1/traces", {}, 2.0) or "")
    assert "cannot be reached" in (probe_grpc(f"http://127.0.0.1:{port}", {}, 2.0) or "")


def test_a_grpc_probe_at_an_http_port_is_a_warning_at_start(
    http_server: tuple[str, list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    base, _ = http_server
    exporter = ReportingExporter(Scripted([]), Target("grpc", base))
    probe(exporter, {}, 2.0)
    (line,) = _lines(caplog)
    assert line.startswith(f"tracing: OTLP endpoint grpc {base} ") and "lost" in line


def test_span_names_are_operation_then_destination_or_its_template() -> None:
    assert span_name("send", "qpu.jobs") == "send qpu.jobs"
    assert span_name("receive", "qpu.reply.ann.x1", "qpu.reply.{user}.{client}") == (
        "receive qpu.reply.{user}.{client}"
    )


def test_at_exit_a_failing_endpoint_is_not_waited_for(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    inner = Scripted([False])  # a second call would find no answer and fail the test
    exporter = ReportingExporter(inner, TARGET)
    exporter.export(SPANS)
    exporter.closing_down()
    assert exporter.export(SPANS) is SpanExportResult.FAILURE
    exporter.shutdown()
    assert "6 spans in all were not exported" in _lines(caplog)[-1]
