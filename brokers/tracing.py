"""OpenTelemetry for qsched: exporter set-up, W3C context in AMQP headers, messaging attributes.

It lives at the broker edge because both the client (producer spans) and the owner (consumer
spans) carry trace context in AMQP headers, and the attribute names follow the messaging semantic
conventions for RabbitMQ. The exporter comes from the standard variables: ``OTEL_TRACES_EXPORTER``
= ``otlp`` (HTTP; ``OTEL_EXPORTER_OTLP_ENDPOINT`` etc.), ``console`` or ``none`` (the default
when neither it nor an OTLP endpoint is set). ``QSCHED_TRACE_FILE`` makes ``console`` write one
JSON span per line to that file instead of stdout (what the tests read).

`configure_tracing` is the one helper every entry point calls: the owner, the user commands and
`QPUClient`. It does nothing when the program installed a tracer provider of its own.
"""

from __future__ import annotations

import atexit
import json
import os
from collections.abc import Mapping, MutableMapping
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context

from brokers.errors import TracingError

TRACER_NAME = "qsched"
_configured = False


def configure_tracing(service_name: str) -> None:
    """Install a tracer provider and exporter chosen by the ``OTEL_*`` variables (once).

    Spans still buffered are flushed when the process exits.

    Raises:
        TracingError: ``OTEL_TRACES_EXPORTER`` names an exporter qsched does not ship.
    """
    global _configured
    if _configured:
        return
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        _configured = True  # the application set up tracing itself
        return
    exporter_name = os.environ.get("OTEL_TRACES_EXPORTER")
    if exporter_name is None:
        exporter_name = "otlp" if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") else "none"
    if exporter_name not in ("none", "console", "otlp"):
        raise TracingError(
            f"OTEL_TRACES_EXPORTER={exporter_name!r} is not an exporter qsched ships "
            "(otlp, console, none); send to Jaeger through otlp"
        )
    _configured = True
    if exporter_name == "none":
        return
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    name = os.environ.get("OTEL_SERVICE_NAME", service_name)
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    if exporter_name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        path = os.environ.get("QSCHED_TRACE_FILE")
        out = open(path, "a", encoding="utf-8") if path else None  # noqa: SIM115 - lives with the process
        exporter = (
            ConsoleSpanExporter(
                out=out, formatter=lambda span: json.dumps(json.loads(span.to_json())) + "\n"
            )
            if out
            else ConsoleSpanExporter()
        )
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    atexit.register(provider.shutdown)


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
    operation: str, destination: str, message_id: str, routing_key: str | None = None
) -> dict[str, Any]:
    """Messaging semantic-convention attributes of a RabbitMQ publish or process."""
    attributes: dict[str, Any] = {
        "messaging.system": "rabbitmq",
        "messaging.operation.type": operation,
        "messaging.operation.name": operation,
        "messaging.destination.name": destination,
        "messaging.message.id": message_id,
    }
    if routing_key is not None:
        attributes["messaging.rabbitmq.destination.routing_key"] = routing_key
    return attributes
