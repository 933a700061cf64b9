"""Spans as the tests read them, from wherever they were exported, and the checks every job's
trace must pass: one root, no orphans, no child starting before its parent.

Sources: the SDK's in-memory exporter (the test process's client), the console exporter's JSON
lines (``QSCHED_TRACE_FILE``), and the debug log of rotel, a collector written in Rust
(`parse_rotel`).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Span:
    """One exported span; ids in lowercase hex without ``0x``, times in ns since the epoch."""

    service: str
    name: str
    kind: str  # PRODUCER, CONSUMER, INTERNAL, ...
    trace_id: str
    span_id: str
    parent_id: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any] = field(default_factory=dict)
    status: str = "UNSET"  # UNSET, OK, ERROR
    status_message: str = ""


def from_sdk(spans: Iterable[Any], service: str = "test") -> list[Span]:
    """Spans of the SDK (`ReadableSpan`, e.g. from `InMemorySpanExporter`)."""
    found = []
    for s in spans:
        found.append(
            Span(
                service=str(s.resource.attributes.get("service.name", service)),
                name=s.name,
                kind=s.kind.name,
                trace_id=f"{s.context.trace_id:032x}",
                span_id=f"{s.context.span_id:016x}",
                parent_id=f"{s.parent.span_id:016x}" if s.parent is not None else "",
                start_ns=int(s.start_time),
                end_ns=int(s.end_time),
                attributes=dict(s.attributes or {}),
                status=s.status.status_code.name,
                status_message=s.status.description or "",
            )
        )
    return found


def _iso_ns(text: str) -> int:
    """ISO time with up to 9 fractional digits, as the console exporter writes it, in ns."""
    whole, _, fraction = text.rstrip("Z").partition(".")
    seconds = datetime.fromisoformat(whole + "+00:00").timestamp()
    return int(seconds) * 1_000_000_000 + int((fraction or "0").ljust(9, "0")[:9])


def from_console(lines: Iterable[str]) -> list[Span]:
    """Spans the console exporter wrote as JSON lines."""
    found = []
    for line in lines:
        if not line.strip():
            continue
        s = json.loads(line)
        status = s.get("status") or {}
        found.append(
            Span(
                service=str(s["resource"]["attributes"].get("service.name", "")),
                name=s["name"],
                kind=s["kind"].removeprefix("SpanKind."),
                trace_id=s["context"]["trace_id"].removeprefix("0x"),
                span_id=s["context"]["span_id"].removeprefix("0x"),
                parent_id=(s.get("parent_id") or "").removeprefix("0x"),
                start_ns=_iso_ns(s["start_time"]),
                end_ns=_iso_ns(s["end_time"]),
                attributes=dict(s.get("attributes") or {}),
                status=str(status.get("status_code", "UNSET")),
                status_message=str(status.get("description") or ""),
            )
        )
    return found


_VALUE = re.compile(r"^(?P<kind>\w+)\((?P<value>.*)\)$")


def _rotel_value(text: str) -> Any:
    match = _VALUE.match(text)
    if match is None:
        return text
    kind, value = match["kind"], match["value"]
    if kind == "Int":
        return int(value)
    if kind == "Double":
        return float(value)
    if kind == "Bool":
        return value == "true"
    return value


def parse_rotel(text: str) -> list[Span]:
    """Spans from rotel's ``--debug-log traces --debug-log-verbosity detailed`` output."""
    spans: list[Span] = []
    service = ""
    current: dict[str, Any] | None = None
    section = ""

    def flush() -> None:
        if current is not None:
            spans.append(
                Span(
                    service=current.get("service", service),
                    name=current.get("Name", ""),
                    kind=current.get("Kind", "").removeprefix("SPAN_KIND_"),
                    trace_id=current.get("Trace ID", ""),
                    span_id=current.get("ID", ""),
                    parent_id=current.get("Parent ID", ""),
                    start_ns=int(current.get("Start time", 0)),
                    end_ns=int(current.get("End time", 0)),
                    attributes=current.get("attributes", {}),
                    status=current.get("Status code", "").removeprefix("STATUS_CODE_") or "UNSET",
                    status_message=current.get("Status message", ""),
                )
            )

    for raw in text.splitlines():
        line = raw.strip()
        if raw.startswith("ResourceSpans #"):
            flush()
            current, section, service = None, "resource", ""
        elif raw.startswith("Span #"):
            flush()
            current, section = {"service": service, "attributes": {}}, "span"
        elif line.startswith("Attributes:") or line.startswith("Resource attributes:"):
            section = "resource" if line.startswith("Resource") else "attributes"
        elif line.startswith("-> ") and ":" in line:
            key, _, value = line[3:].partition(": ")
            if section == "resource" and key == "service.name":
                service = str(_rotel_value(value))
            elif section == "attributes" and current is not None:
                current["attributes"][key] = _rotel_value(value)
        elif current is not None and ":" in line and section == "span":
            key, _, value = line.partition(":")
            current[key.strip()] = value.strip()
        elif raw.startswith(("ScopeSpans", "InstrumentationScope")):
            flush()
            current = None
    flush()
    return spans


def by_trace(spans: Iterable[Span]) -> dict[str, list[Span]]:
    """Spans grouped by trace id."""
    traces: dict[str, list[Span]] = defaultdict(list)
    for span in spans:
        traces[span.trace_id].append(span)
    return dict(traces)


def trace_problems(spans: list[Span]) -> list[str]:
    """What is wrong with one trace: not exactly one root, a parent that is not in the trace
    (an orphan), a child that starts before its parent."""
    ids = {s.span_id: s for s in spans}
    problems = []
    roots = [s for s in spans if not s.parent_id]
    if len(roots) != 1:
        problems.append(f"{len(roots)} roots: {[r.name for r in roots]}")
    for span in spans:
        if not span.parent_id:
            continue
        parent = ids.get(span.parent_id)
        if parent is None:
            problems.append(f"{span.name!r} ({span.service}) is an orphan")
        elif span.start_ns < parent.start_ns:
            ahead_us = (parent.start_ns - span.start_ns) / 1000
            problems.append(f"{span.name!r} starts {ahead_us:.1f} us before {parent.name!r}")
        if span.end_ns < span.start_ns:
            problems.append(f"{span.name!r} ends before it starts")
    return problems


def children_of(spans: list[Span], parent: Span) -> list[Span]:
    """The direct children of `parent`, by start time."""
    return sorted((s for s in spans if s.parent_id == parent.span_id), key=lambda s: s.start_ns)


def one(spans: list[Span], **match: Any) -> Span:
    """The one span with these field values (AssertionError naming what there was, else)."""
    found = [s for s in spans if all(getattr(s, k) == v for k, v in match.items())]
    assert len(found) == 1, f"{len(found)} spans match {match}: {[s.name for s in spans]}"
    return found[0]
