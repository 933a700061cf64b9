"""Validation of Pulser sequences against a device, returning structured errors.

The owner and the client both call `validate_sequence` so a submitter gets the same answer
locally as from the QPU: which atoms, which channel, which limit, never a traceback. Pulser is
imported lazily because decoding a message must not pay for it.
"""

from __future__ import annotations

import json
import math
from itertools import combinations
from typing import TYPE_CHECKING, Any

from schemas.enums import ErrorCode
from schemas.messages import JobError

if TYPE_CHECKING:
    from pulser.devices._device_datacls import BaseDevice

MAX_LISTED_PAIRS = 10
# abstract-repr coordinates are rounded to 1e-6 µm; do not refuse atoms exactly at the limit
DISTANCE_TOLERANCE_UM = 1e-5


def _error(message: str, field: str = "sequence", **details: Any) -> JobError:
    return JobError(
        code=ErrorCode.INVALID_SEQUENCE,
        message=message,
        retryable=False,
        field=field,
        details=details,
    )


def load_device(device_json: str) -> BaseDevice:
    """Build a Pulser device from its abstract-repr JSON.

    Raises:
        ValueError: the JSON does not describe a valid device.
    """
    from pulser.json.abstract_repr.deserializer import deserialize_device

    try:
        return deserialize_device(device_json)
    except Exception as exc:  # pulser raises jsonschema, KeyError, TypeError...
        raise ValueError(f"not a valid Pulser device: {_reason(exc)}") from exc


def _reason(exc: BaseException) -> str:
    """The first exception in the chain that says something (pulser wraps the real cause)."""
    current: BaseException | None = exc
    while current is not None:
        text = str(getattr(current, "message", None) or current).strip()
        if text and text != type(current).__name__:
            return f"{type(current).__name__}: {text.splitlines()[0][:300]}"
        current = current.__cause__ or current.__context__
    return type(exc).__name__


def validate_shots(shots: int, device: BaseDevice) -> JobError | None:
    """Check a shot count against the device's `max_runs`."""
    max_runs = device.max_runs
    if max_runs is not None and shots > max_runs:
        return JobError(
            code=ErrorCode.TOO_MANY_SHOTS,
            message=f"{shots} shots exceed the device limit of {max_runs} (max_runs of {device.name})",
            field="shots",
            details={"shots": shots, "max_runs": max_runs, "device": device.name},
        )
    return None


def _validate_register(qubits: dict[str, Any], device: BaseDevice) -> JobError | None:
    n_atoms = len(qubits)
    if device.max_atom_num is not None and n_atoms > device.max_atom_num:
        return _error(
            f"{n_atoms} atoms exceed the limit of {device.max_atom_num} atoms of {device.name}",
            atoms=n_atoms,
            max_atom_num=device.max_atom_num,
            device=device.name,
        )
    coords = {str(q): [float(x) for x in pos] for q, pos in qubits.items()}
    if len(next(iter(coords.values()), [])) > device.dimensions:
        return _error(
            f"register is {len(next(iter(coords.values())))}D but {device.name} is "
            f"{device.dimensions}D",
            dimensions=device.dimensions,
            device=device.name,
        )
    limit = float(device.min_atom_distance)
    close_pairs = [
        (qa, qb, round(math.dist(pa, pb), 4))
        for (qa, pa), (qb, pb) in combinations(coords.items(), 2)
        if math.dist(pa, pb) < limit - DISTANCE_TOLERANCE_UM
    ]
    too_close = [{"atoms": [qa, qb], "distance_um": d} for qa, qb, d in close_pairs]
    if too_close:
        pairs = ", ".join(f"{qa}-{qb}" for qa, qb, _ in close_pairs[:MAX_LISTED_PAIRS])
        return _error(
            f"atoms too close: {pairs} are nearer than the {limit} µm minimum of {device.name}",
            pairs=too_close[:MAX_LISTED_PAIRS],
            pairs_total=len(too_close),
            min_atom_distance_um=limit,
            device=device.name,
        )
    radius = device.max_radial_distance
    if radius is not None:
        far = {q: round(math.hypot(*p), 4) for q, p in coords.items() if math.hypot(*p) > radius}
        if far:
            return _error(
                f"atoms {', '.join(far)} lie beyond the {radius} µm radius of {device.name}",
                atoms=far,
                max_radial_distance_um=radius,
                device=device.name,
            )
    return None


def _validate_channels(channel_ids: dict[str, str], device: BaseDevice) -> JobError | None:
    missing = {name: cid for name, cid in channel_ids.items() if cid not in device.channels}
    if missing:
        listed = ", ".join(f"{name} ({cid})" for name, cid in missing.items())
        return _error(
            f"channels {listed} do not exist on {device.name}",
            channels=missing,
            available=sorted(device.channels),
            device=device.name,
        )
    return None


def validate_sequence(
    sequence_json: str,
    device: BaseDevice,
    shots: int | None = None,
    allow_device_switch: bool = False,
) -> JobError | None:
    """Check that a sequence (and shot count) can run on `device`.

    A sequence built for another device is refused (``DEVICE_MISMATCH``, naming both) unless
    `allow_device_switch`: then it is moved to `device` if it fits.

    Args:
        sequence_json: Pulser abstract-repr JSON.
        device: the device it must run on now.
        shots: also check the shot count when given.
        allow_device_switch: the submitter accepts running on `device` instead.

    Returns:
        None when it can run, else a structured `JobError` naming the problem.
    """
    from pulser import Sequence

    try:
        document = json.loads(sequence_json)
        seq = Sequence.from_abstract_repr(sequence_json)
    except Exception as exc:  # pulser raises jsonschema, ValueError, KeyError, TypeError...
        return _error(f"sequence cannot be read: {str(exc).splitlines()[0][:300]}")
    if seq.is_parametrized():
        return _error("sequence still has free variables; build it before submitting")
    qubits = seq.register.qubits
    problem = _validate_register(qubits, device) or _validate_channels(
        dict(document.get("channels", {})), device
    )
    if problem is None and shots is not None:
        problem = validate_shots(shots, device)
    if problem is not None:
        return problem
    if seq.device.name != device.name:
        if not allow_device_switch:
            return JobError(
                code=ErrorCode.DEVICE_MISMATCH,
                message=(
                    f"sequence is built for {seq.device.name} but the QPU is {device.name}; "
                    f"rebuild it on {device.name} or submit with allow_device_switch"
                ),
                field="sequence",
                details={"sequence_device": seq.device.name, "qpu_device": device.name},
            )
        try:
            seq.switch_device(device)
        except Exception as exc:  # pulser's own check covers limits we do not list
            return _error(
                f"sequence does not fit {device.name}: {str(exc).splitlines()[0][:300]}",
                device=device.name,
            )
    return None
