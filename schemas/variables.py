"""A batch job's variables checked against the variables its sequence declares.

Pulser's `Sequence.build` ignores unknown names (with a warning) and fails on a missing one deep
inside the build; here a job is refused at submit, with one line naming every bad variable, by
the client and again by the owner, without building anything (values that only the build can
judge, such as an amplitude over its channel's limit, fail the build before the run).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from schemas.enums import ErrorCode
from schemas.jobs import JobError

MAX_VARIABLE_VALUES = 10_000


def _error(message: str, **details: Any) -> JobError:
    return JobError(
        code=ErrorCode.INVALID_VARIABLES, message=message, field="variables", details=details
    )


def _values(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def _bad_value(kind: str, size: int, value: Any) -> str | None:
    """Why `value` does not fit a declared (kind, size), or None."""
    if kind == "qubits":
        return None if isinstance(value, Mapping) else "must map qubit ids to trap ids"
    values = _values(value)
    if len(values) > MAX_VARIABLE_VALUES:
        return f"has {len(values)} values (at most {MAX_VARIABLE_VALUES})"
    if size and len(values) != size:
        return f"has {len(values)} value{'s' * (len(values) != 1)}, declared size {size}"
    for item in values:
        if isinstance(item, bool) or not isinstance(item, int | float):
            return f"{item!r} is not a number"
        if kind == "int" and not float(item).is_integer():
            return f"{item!r} is not an integer"
        if not math.isfinite(float(item)):
            return f"{item!r} is not finite"
    return None


def validate_variables(
    declared: Mapping[str, tuple[str, int]], given: Mapping[str, Any]
) -> JobError | None:
    """Check one job's `variables` against the sequence's `declared` ones (name -> type, size).

    Returns:
        None when they fit, else an INVALID_VARIABLES error naming the unknown, missing and
        ill-typed variables.
    """
    unknown = sorted(set(given) - set(declared))
    missing = sorted(name for name in declared if name not in given and name != "qubits")
    bad = {
        name: why
        for name, value in given.items()
        if name in declared and (why := _bad_value(*declared[name], value)) is not None
    }
    if not (unknown or missing or bad):
        return None
    parts = []
    if unknown:
        parts.append(f"not declared by the sequence: {', '.join(unknown)}")
    if missing:
        parts.append(f"missing: {', '.join(missing)}")
    parts += [f"{name} {why}" for name, why in bad.items()]
    return _error(
        "variables " + "; ".join(parts) + f" (declared: {', '.join(sorted(declared)) or 'none'})",
        unknown=unknown,
        missing=missing,
        invalid=bad,
        declared=sorted(declared),
    )
