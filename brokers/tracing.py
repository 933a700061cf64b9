"""OpenTelemetry for qsched: exporter set-up, W3C context in AMQP headers, messaging attributes.

It lives at the broker edge because both the client (producer spans) and the owner (consumer
spans) carry trace context in AMQP headers, and the attribute names follow the messaging semantic
conventions for RabbitMQ. The exporter comes from the standard variables: ``OTEL_TRACES_EXPORTER``
(a comma-separated list of ``otlp``, ``console``, ``none``; default ``otlp`` when an OTLP endpoint
variable is set, else ``none``), ``OTEL_SDK_DISABLED=true`` turns everything off, and OTLP goes
over gRPC or HTTP as ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL``/``OTEL_EXPORTER_OTLP_PROTOCOL`` say
(`brokers.otlp`: endpoints, the start-up probe, lost spans reported).
``QSCHED_TRACE_FILE`` makes ``console`` write one JSON span per line to that file instead of
stdout (what the tests read).

`configure_tracing` is the one helper every entry point calls: the owner, the user commands,
`QPUClient` and the gateway. It does nothing when the program installed a tracer provider of
its own.
"""

from __future__ import annotations

import atexit
import json
import os
from collections.abc import Mapping, MutableMapping
from datetime import UTC, datetime, timedelta
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context

from brokers.errors import TracingError

TRACER_NAME = "qsched"
EXPORTERS = ("otlp", "console", "none")
PROBE_WAIT_S = 3.0
_configured = False
_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def exporters_of(environ: Mapping[str, str] = os.environ) -> list[str]:
    """The span exporters the variables ask for, in order (empty: tracing off).

    Raises:
        TracingError: ``OTEL_TRACES_EXPORTER`` names an exporter qsched does not ship.
    """
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    raw = environ.get("OTEL_TRACES_EXPORTER", "").strip()
    if not raw:
        endpoints = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        return ["otlp"] if any(environ.get(name, "").strip() for name in endpoints) else []
    names = [name.strip().lower() for name in raw.split(",") if name.strip()]
    unknown = [name for name in names if name not in EXPORTERS]
    if unknown:
        raise TracingError(
            f"OTEL_TRACES_EXPORTER={raw!r}: {', '.join(unknown)} is not an exporter qsched "
            "ships (otlp, console, none); send to Jaeger, Tempo or a collector through otlp"
        )
    return [] if "none" in names else list(dict.fromkeys(names))


def configure_tracing(service_name: str, environ: Mapping[str, str] | None = None) -> bool:
    """Install a tracer provider and the exporters the ``OTEL_*`` variables choose (once per
    process); whether spans are now exported.

    OTLP goes over gRPC or HTTP (`brokers.otlp`); an endpoint that cannot be reached, or is not
    an OTLP traces endpoint, is one warning line at start, and spans that could not be sent are
    counted and reported. Spans still buffered are flushed when the process exits.

    Args:
        service_name: ``service.name`` unless ``OTEL_SERVICE_NAME`` sets one (other resource
            attributes come from ``OTEL_RESOURCE_ATTRIBUTES``).
        environ: the variables to read (default: the process environment).

    Raises:
        TracingError: an exporter or OTLP protocol qsched does not ship.
    """
    global _configured
    if _configured:
        return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    env = os.environ if environ is None else environ
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        _configured = True  # the application set up tracing itself
        return True
    names = exporters_of(env)
    target = None
    if "otlp" in names:
        from brokers.otlp import target_of

        target = target_of(env)  # raises before anything is installed
    _configured = True
    if not names:
        return False
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    name = env.get("OTEL_SERVICE_NAME", "").strip() or service_name
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    if "console" in names:
        provider.add_span_processor(SimpleSpanProcessor(_console_exporter(env)))
    reporter, probing = None, None
    if target is not None:
        from brokers.otlp import ReportingExporter, build_exporter, quiet_sdk_loggers, start_probe

        quiet_sdk_loggers()
        reporter = ReportingExporter(build_exporter(target), target)
        provider.add_span_processor(BatchSpanProcessor(reporter))
        probing = start_probe(reporter, env)
    trace.set_tracer_provider(provider)

    def at_exit() -> None:
        if reporter is not None and probing is not None:
            probing.join(PROBE_WAIT_S)  # a short program still learns whether to wait for it
            reporter.closing_down()
        provider.shutdown()

    atexit.register(at_exit)
    return True


def _console_exporter(environ: Mapping[str, str]) -> Any:
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    path = environ.get("QSCHED_TRACE_FILE")
    if not path:
        return ConsoleSpanExporter()
    out = open(path, "a", encoding="utf-8")  # noqa: SIM115 - lives with the process
    return ConsoleSpanExporter(
        out=out, formatter=lambda span: json.dumps(json.loads(span.to_json())) + "\n"
    )


def time_ns_of(at: datetime) -> int:
    """Nanoseconds since the Unix epoch of `at` (aware), exact to its microsecond: the client's
    send span and the owner's spans compute a job's ``submitted_at`` alike."""
    return (at - _UNIX_EPOCH) // timedelta(microseconds=1) * 1000


def tracer() -> trace.Tracer:
    """The qsched tracer (a no-op until `configure_tracing` installs a provider)."""
    return trace.get_tracer(TRACER_NAME)


def tracing_active() -> bool:
    """Whether a span made now would carry anything: a tracer provider is installed, or the
    caller runs inside a valid span of its own (whose context a no-op span passes on)."""
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return True
    return trace.get_current_span().get_span_context().is_valid


def inject(headers: MutableMapping[str, Any], context: Context | None = None) -> None:
    """Write ``traceparent``/``tracestate`` of `context` (default: current) into AMQP headers."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=context)
    headers.update(carrier)


def extract(headers: Mapping[str, Any] | None) -> Context:
    """The trace context carried by AMQP headers (empty context when there is none)."""
    carrier = {
        k: v.decode() if isinstance(v, bytes) else str(v)
        for k, v in (headers or {}).items()
        if k in ("traceparent", "tracestate")
    }
    return propagate.extract(carrier)


def messaging_attributes(
    operation: str,
    destination: str,
    message_id: str,
    routing_key: str | None = None,
    *,
    template: str | None = None,
) -> dict[str, Any]:
    """Messaging semantic-convention attributes of a RabbitMQ send, receive or process.

    Args:
        operation: ``send``, ``receive`` or ``process`` (``messaging.operation.type``, and its
            name too: qsched's operations are the generic ones).
        destination: the exchange sent to, or the queue received from.
        template: for a per-client destination (a reply queue), the name it is an instance of;
            the span is named after the template, never the instance.
    """
    attributes: dict[str, Any] = {
        "messaging.system": "rabbitmq",
        "messaging.operation.type": operation,
        "messaging.operation.name": operation,
        "messaging.destination.name": destination,
        "messaging.message.id": message_id,
    }
    if template is not None:
        attributes["messaging.destination.template"] = template
    if routing_key is not None:
        attributes["messaging.rabbitmq.destination.routing_key"] = routing_key
    return attributes


def span_name(operation: str, destination: str, template: str | None = None) -> str:
    """``{operation} {destination}``, the conventions' span name (a template if there is one)."""
    return f"{operation} {template or destination}"
