"""A checker of the Chrome Trace Event Format (JSON object form), as Perfetto and chrome://tracing
read it: https://docs.google.com/document/d/1CvAClvFfyA5R-PhYUmn5OOQtYMH4h6I0nSsKchNAySU

`violations(trace)` lists every rule broken; an empty list means the trace is well formed.
"""

from __future__ import annotations

from collections import defaultdict
from numbers import Real
from typing import Any

PHASES = set("BEXIiCbneSTpFsftPOND") | {"M", "R", "c", "(", ")"}
METADATA_NAMES = {
    "process_name": "name",
    "process_labels": "labels",
    "process_sort_index": "sort_index",
    "thread_name": "name",
    "thread_sort_index": "sort_index",
}
THREAD_SCOPED = set("BEXIisftn")


def _number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def violations(trace: Any) -> list[str]:
    """Every broken rule of the format, as readable lines."""
    found: list[str] = []
    if not isinstance(trace, dict) or not isinstance(trace.get("traceEvents"), list):
        return ["top level must be an object with a traceEvents array"]
    if trace.get("displayTimeUnit", "ms") not in ("ms", "ns"):
        found.append("displayTimeUnit must be 'ms' or 'ns'")
    slices: dict[tuple[int, int], list[tuple[float, float, str]]] = defaultdict(list)
    flows: dict[Any, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    stacks: dict[tuple[int, int], list[str]] = defaultdict(list)
    named_threads: set[tuple[int, int]] = set()
    named_processes: set[int] = set()
    used_threads: set[tuple[int, int]] = set()
    for i, event in enumerate(trace["traceEvents"]):
        where = f"event {i} ({event.get('ph')!r} {event.get('name')!r})"
        ph = event.get("ph")
        if ph not in PHASES:
            found.append(f"{where}: unknown ph")
            continue
        if not isinstance(event.get("pid"), int):
            found.append(f"{where}: pid must be an integer")
        if ph in THREAD_SCOPED and not isinstance(event.get("tid"), int):
            found.append(f"{where}: tid must be an integer")
        if ph != "E" and not isinstance(event.get("name"), str):
            found.append(f"{where}: name must be a string")
        if ph != "M" and not (_number(event.get("ts")) and event["ts"] >= 0):
            found.append(f"{where}: ts must be a non-negative number of microseconds")
        if "args" in event and not isinstance(event["args"], dict):
            found.append(f"{where}: args must be an object")
        key = (event.get("pid"), event.get("tid"))
        if ph in THREAD_SCOPED:
            used_threads.add(key)  # type: ignore[arg-type]
        if ph == "M":
            arg = METADATA_NAMES.get(event.get("name", ""))
            if arg is None or arg not in event.get("args", {}):
                found.append(f"{where}: metadata needs a known name and args.{arg or 'name'}")
            elif event["name"] == "thread_name":
                named_threads.add(key)  # type: ignore[arg-type]
            elif event["name"] == "process_name":
                named_processes.add(event["pid"])
        elif ph == "X":
            if not (_number(event.get("dur")) and event["dur"] >= 0):
                found.append(f"{where}: a complete event needs dur >= 0 (microseconds)")
            else:
                slices[key].append((event["ts"], event["ts"] + event["dur"], event["name"]))  # type: ignore[index]
        elif ph == "B":
            stacks[key].append(event["name"])  # type: ignore[index]
        elif ph == "E":
            if not stacks[key]:  # type: ignore[index]
                found.append(f"{where}: E without an open B on its thread")
            else:
                stacks[key].pop()  # type: ignore[index]
        elif ph == "C":
            args = event.get("args")
            if not args or not all(_number(v) for v in args.values()):
                found.append(f"{where}: a counter needs numeric args")
        elif ph in "stf":
            if "id" not in event or "cat" not in event:
                found.append(f"{where}: a flow event needs id and cat")
            else:
                flows[(event["cat"], event["id"])][ph].append(event)
        elif ph == "i" and event.get("s", "t") not in ("g", "p", "t"):
            found.append(f"{where}: instant scope must be g, p or t")
    for key, stack in stacks.items():
        if stack:
            found.append(f"thread {key}: B without E: {stack}")
    for key, spans in slices.items():
        found += _nesting(key, spans)
    for flow_key, parts in flows.items():
        found += _flow(flow_key, parts, slices)
    for key in sorted(used_threads - named_threads, key=str):
        found.append(f"thread {key} has events but no thread_name metadata")
    for pid in sorted({k[0] for k in used_threads} - named_processes, key=str):
        found.append(f"process {pid} has events but no process_name metadata")
    return found


def _nesting(key: Any, spans: list[tuple[float, float, str]]) -> list[str]:
    """Complete events on one thread must nest: each lies inside or after the enclosing one."""
    found, open_ends = [], []
    for start, end, name in sorted(spans, key=lambda s: (s[0], -s[1])):
        while open_ends and open_ends[-1] <= start:
            open_ends.pop()
        if open_ends and end > open_ends[-1]:
            found.append(f"thread {key}: {name!r} [{start}, {end}] overlaps its enclosing slice")
        open_ends.append(end)
    return found


def _flow(
    flow_key: Any, parts: dict[str, list[dict[str, Any]]], slices: dict[Any, Any]
) -> list[str]:
    """A flow has one start and one finish, in time order, each bound to a slice of its thread."""
    starts, finishes = parts.get("s", []), parts.get("f", [])
    if len(starts) != 1 or len(finishes) != 1:
        return [
            f"flow {flow_key}: needs exactly one s and one f, has {len(starts)} and {len(finishes)}"
        ]
    (s,), (f,) = starts, finishes
    found = []
    if f["ts"] < s["ts"]:
        found.append(f"flow {flow_key}: finishes before it starts")
    for step in [s, *parts.get("t", [])]:
        if not _enclosed(step, slices):
            found.append(
                f"flow {flow_key}: {step['ph']} at {step['ts']} is inside no slice of its thread"
            )
    if f.get("bp") == "e":
        if not _enclosed(f, slices):
            found.append(f"flow {flow_key}: f (bp=e) at {f['ts']} is inside no slice of its thread")
    elif not any(start >= f["ts"] for start, _e, _n in slices.get((f["pid"], f["tid"]), [])):
        found.append(f"flow {flow_key}: f at {f['ts']} has no later slice to bind to")
    return found


def _enclosed(event: dict[str, Any], slices: dict[Any, Any]) -> bool:
    return any(
        start <= event["ts"] <= end
        for start, end, _n in slices.get((event["pid"], event["tid"]), [])
    )
