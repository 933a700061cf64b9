"""OTLP span export chosen by the standard ``OTEL_*`` variables, its failures said out loud.

Which protocol: ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL``, else ``OTEL_EXPORTER_OTLP_PROTOCOL``, else
``http/protobuf`` (the specification's default). ``grpc`` exports over gRPC, ``http/protobuf``
over HTTP; ``http/json`` is not shipped by the Python SDK, so it is sent as ``http/protobuf`` to
the same URL (collectors take both on their HTTP port) after one warning. Anything else is a
`TracingError`. Where to: the SDK exporters' own variables (``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``,
else ``OTEL_EXPORTER_OTLP_ENDPOINT`` plus ``/v1/traces`` for HTTP; headers, timeout, compression,
certificates and ``*_INSECURE`` alike); `endpoint_of` says which URL that gives, for messages.

Nothing is lost without a word: at start a probe (in a daemon thread, so start-up does not
wait) sends an empty export to the endpoint and logs one warning line when it cannot be reached
or does not answer as an OTLP traces endpoint; `ReportingExporter` silences the SDK's per-retry
log lines and logs one warning at the first failed export, then one when export recovers or the
process ends, with how many spans were lost.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlparse

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from brokers.errors import TracingError

log = logging.getLogger("qsched.tracing")

PROTOCOLS = ("grpc", "http/protobuf", "http/json")
DEFAULT_PROTOCOL = "http/protobuf"
PROBE_TIMEOUT_S = 2.0
# The SDK's exporter and batch-processor loggers: a retry or a failed batch is one line each,
# for every batch; `ReportingExporter` says it once instead.
SDK_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http._common",
    "opentelemetry.exporter.http_transport",
    "opentelemetry.sdk._shared_internal",
)


@dataclass(frozen=True)
class Target:
    """Where spans go: the protocol and the URL the exporter posts to (gRPC: its address)."""

    protocol: str
    endpoint: str

    @property
    def label(self) -> str:
        """How messages name it: ``grpc http://host:4317``."""
        return f"{self.protocol} {self.endpoint}"


def _env(name: str, environ: Mapping[str, str]) -> str | None:
    value = environ.get(name, "").strip()
    return value or None


def protocol_of(environ: Mapping[str, str] = os.environ) -> str:
    """The OTLP protocol for traces the variables ask for.

    Raises:
        TracingError: a value that is not one of `PROTOCOLS`.
    """
    name = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
    value = _env(name, environ)
    if value is None:
        name = "OTEL_EXPORTER_OTLP_PROTOCOL"
        value = _env(name, environ)
    if value is None:
        return DEFAULT_PROTOCOL
    if value.lower() not in PROTOCOLS:
        raise TracingError(
            f"{name}={value!r} is not an OTLP protocol (grpc, http/protobuf, http/json)",
            hint="set it to grpc (port 4317) or http/protobuf (port 4318)",
        )
    return value.lower()


def endpoint_of(protocol: str, environ: Mapping[str, str] = os.environ) -> str:
    """The URL the SDK's exporter for `protocol` sends traces to, from the same variables."""
    own = _env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", environ)
    base = _env("OTEL_EXPORTER_OTLP_ENDPOINT", environ)
    if protocol == "grpc":
        return own or base or "http://localhost:4317"
    if own:
        return own
    return f"{(base or 'http://localhost:4318').removesuffix('/')}/v1/traces"


def target_of(environ: Mapping[str, str] = os.environ) -> Target:
    """The protocol and endpoint the variables choose (`protocol_of`, `endpoint_of`)."""
    protocol = protocol_of(environ)
    return Target(protocol, endpoint_of(protocol, environ))


def build_exporter(target: Target) -> SpanExporter:
    """The SDK's OTLP span exporter for `target` (it reads the other variables itself)."""
    if target.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        return GrpcExporter()
    if target.protocol == "http/json":
        log.warning(
            "tracing: http/json is not shipped; sending http/protobuf to %s (collectors take both)",
            target.endpoint,
        )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpExporter,
    )

    return HttpExporter()


# ---- the probe at start ------------------------------------------------------------------------


def _headers(environ: Mapping[str, str]) -> dict[str, str]:
    from opentelemetry.util.re import parse_env_headers

    raw = _env("OTEL_EXPORTER_OTLP_TRACES_HEADERS", environ) or _env(
        "OTEL_EXPORTER_OTLP_HEADERS", environ
    )
    return dict(parse_env_headers(raw or "", liberal=True))


def _certificate(environ: Mapping[str, str]) -> str | None:
    return _env("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", environ) or _env(
        "OTEL_EXPORTER_OTLP_CERTIFICATE", environ
    )


def probe_http(endpoint: str, environ: Mapping[str, str], timeout_s: float) -> str | None:
    """Why an empty OTLP/HTTP export to `endpoint` failed (None: it was accepted)."""
    request = urllib.request.Request(
        endpoint,
        data=b"",
        method="POST",
        headers={"Content-Type": "application/x-protobuf", **_headers(environ)},
    )
    cafile = _certificate(environ)
    context = ssl.create_default_context(cafile=cafile) if endpoint.startswith("https") else None
    try:
        with urllib.request.urlopen(request, timeout=timeout_s, context=context) as answer:
            status = int(answer.status)
    except urllib.error.HTTPError as exc:
        return f"answered HTTP {exc.code} (not an OTLP/HTTP traces endpoint?)"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"cannot be reached, or does not speak HTTP ({reason})"
    if not 200 <= status < 300:
        return f"answered HTTP {status} (not an OTLP/HTTP traces endpoint?)"
    return None


def _insecure(endpoint: str, environ: Mapping[str, str]) -> bool:
    if urlparse(endpoint).scheme == "https":
        return False
    flag = _env("OTEL_EXPORTER_OTLP_TRACES_INSECURE", environ) or _env(
        "OTEL_EXPORTER_OTLP_INSECURE", environ
    )
    if flag is not None:
        return flag.lower() == "true"
    return urlparse(endpoint).scheme == "http"


def probe_grpc(endpoint: str, environ: Mapping[str, str], timeout_s: float) -> str | None:
    """Why an empty OTLP/gRPC export to `endpoint` failed (None: it was accepted)."""
    import grpc
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub

    parsed = urlparse(endpoint)
    address = parsed.netloc or endpoint
    if _insecure(endpoint, environ):
        channel = grpc.insecure_channel(address)
    else:
        cafile = _certificate(environ)
        roots = None
        if cafile:
            with open(cafile, "rb") as file:
                roots = file.read()
        channel = grpc.secure_channel(address, grpc.ssl_channel_credentials(roots))
    try:
        TraceServiceStub(channel).Export(
            ExportTraceServiceRequest(),
            timeout=timeout_s,
            metadata=tuple(_headers(environ).items()),
        )
    except grpc.RpcError as exc:
        code = exc.code() if hasattr(exc, "code") else None
        name = code.name if code is not None else "error"
        if name in ("UNAVAILABLE", "DEADLINE_EXCEEDED"):
            return f"cannot be reached, or does not speak gRPC ({name})"
        return f"answered {name} (not an OTLP/gRPC traces endpoint?)"
    finally:
        channel.close()
    return None


def probe(
    reporter: ReportingExporter, environ: Mapping[str, str], timeout_s: float = PROBE_TIMEOUT_S
) -> None:
    """Try the reporter's target once; one warning line when it is unreachable or the wrong kind
    of endpoint (none if an export already said so)."""
    target = reporter.target
    try:
        if target.protocol == "grpc":
            why = probe_grpc(target.endpoint, environ, timeout_s)
        else:
            why = probe_http(target.endpoint, environ, timeout_s)
    except Exception as exc:  # a probe never breaks the program it reports on
        why = f"could not be tried ({exc})"
    if why is not None:
        reporter.announce(why)


def start_probe(
    reporter: ReportingExporter, environ: Mapping[str, str] | None = None
) -> threading.Thread:
    """Run `probe` in a daemon thread (start-up does not wait for the network)."""
    snapshot = dict(os.environ if environ is None else environ)
    thread = threading.Thread(
        target=probe, args=(reporter, snapshot), name="qsched-otlp-probe", daemon=True
    )
    thread.start()
    return thread


# ---- failed exports, said once -----------------------------------------------------------------


class _Quiet(logging.Filter):
    """Drops the SDK's per-batch export lines below CRITICAL (the reporter says them once)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.CRITICAL


def quiet_sdk_loggers() -> None:
    """Stop the SDK's exporters from logging every retry and failed batch."""
    for name in SDK_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _Quiet) for f in logger.filters):
            logger.addFilter(_Quiet())


class ReportingExporter(SpanExporter):
    """A span exporter that counts what its inner exporter failed to send and says so: one
    warning when the endpoint is found failing (by the probe or a failed export), one when
    export works again, one at shutdown if spans were lost since."""

    def __init__(self, inner: SpanExporter, target: Target) -> None:
        self.inner = inner
        self.target = target
        self.lost = 0
        self.lost_total = 0
        self.failing = False
        self.closing = False
        self._lock = threading.Lock()

    def announce(self, why: str) -> None:
        """Say once that the endpoint fails (`why`), unless that was said already."""
        with self._lock:
            if self.failing:
                return
            self.failing = True
        log.warning(
            "tracing: OTLP endpoint %s %s; spans are lost until it answers",
            self.target.label,
            why,
        )

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Export through the inner exporter, counting a failed batch's spans as lost (at exit,
        an endpoint that is failing is not retried: the process does not wait for it)."""
        try:
            if self.closing and self.failing:
                result = SpanExportResult.FAILURE
            else:
                result = self.inner.export(spans)
        except Exception as exc:  # the SDK would log it per batch; we count it
            log.debug("tracing: export raised %r", exc)
            result = SpanExportResult.FAILURE
        ok = result is SpanExportResult.SUCCESS
        with self._lock:
            was_failing, lost = self.failing, self.lost
            if ok:
                self.failing, self.lost = False, 0
            else:
                self.failing = True
                self.lost += len(spans)
                self.lost_total += len(spans)
        if ok and was_failing:
            log.warning(
                "tracing: OTLP endpoint %s answers; %d spans were lost before it did",
                self.target.label,
                lost,
            )
        elif not ok and not was_failing:
            log.warning(
                "tracing: could not export %d spans to OTLP endpoint %s; counting further losses",
                len(spans),
                self.target.label,
            )
        return result

    def closing_down(self) -> None:
        """The process is ending: the last batches go out only if the endpoint was answering."""
        self.closing = True

    def shutdown(self) -> None:
        """Shut the inner exporter down; say how many spans were lost since the last line."""
        self.inner.shutdown()
        with self._lock:
            if self.failing and self.lost:
                log.warning(
                    "tracing: %d spans in all were not exported to OTLP endpoint %s",
                    self.lost,
                    self.target.label,
                )
                self.lost = 0

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Flush the inner exporter."""
        return bool(self.inner.force_flush(timeout_millis))
