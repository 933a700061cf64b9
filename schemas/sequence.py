"""Validation of Pulser sequences against a device, returning structured errors.

The owner and the client both check a sequence the same way, so a submitter gets the same answer
locally as from the QPU: which atoms, which channel, which limit, never a traceback.

Where the time goes (issue 21's profile): checking one 3-atom sequence cost 5-8.5 ms, 80% of it
in Pulser's JSON-schema validation run twice (once when the client serialized the sequence, once
when it was read back), the rest in `Sequence.from_abstract_repr` rebuilding the device embedded
in every sequence and re-validating the register layout. So:

- the schema is checked with the validators Pulser compiles once (``fastjsonschema``, a
  dependency: Pulser uses it when it is installed), and only where it was not already checked
  (`Sequence.to_abstract_repr` validates what it writes);
- the device checks (atoms, distances, radius, channels, device name, declared variables) read
  the JSON document, not a rebuilt `pulser.Sequence` (``deep=False``);
- the full Pulser rebuild (``deep=True``: every pulse against its channel's limits) runs only
  where the sequence is not trusted and then once per distinct sequence: `SequenceChecker`
  caches verdicts by digest.

Pulser is imported lazily because decoding a message must not pay for it.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import OrderedDict
from itertools import combinations
from typing import TYPE_CHECKING, Any

from schemas.enums import ErrorCode
from schemas.jobs import JobError

if TYPE_CHECKING:
    from pulser.devices._device_datacls import BaseDevice

MAX_LISTED_PAIRS = 10
# abstract-repr coordinates are rounded to 1e-6 µm; do not refuse atoms exactly at the limit
DISTANCE_TOLERANCE_UM = 1e-5
CHECK_CACHE_SIZE = 1024


# Keys every abstract-repr sequence has: Pulser's sequence schema requires them in all its forms.
SEQUENCE_KEYS = (
    "version",
    "name",
    "register",
    "channels",
    "variables",
    "operations",
    "measurement",
    "device",
)


def missing_sequence_keys(document: dict[str, Any]) -> list[str]:
    """The keys of an abstract-repr sequence that `document` lacks (pure, no Pulser): a first
    look, cheap enough for the CLI, that tells JSON that is no sequence at all from a sequence
    that does not fit the device (which `validate_sequence` says)."""
    return [key for key in SEQUENCE_KEYS if key not in document]


def specs_digest(device: Any) -> str:
    """A short digest of a device's specs (its abstract representation), stamped on runs and
    their results so a result says which specs it ran under."""
    return hashlib.sha256(device.to_abstract_repr().encode()).hexdigest()[:12]


class SpecsDigest:
    """`specs_digest` of the device last asked about, computed again only when the device object
    changes (a calibration's new specs): a dispatch asks for it every time."""

    def __init__(self) -> None:
        self._last: tuple[int, str] | None = None

    def __call__(self, device: Any) -> str:
        """The digest of `device`'s specs."""
        if self._last is None or self._last[0] != id(device):
            self._last = (id(device), specs_digest(device))
        return self._last[1]


def sequence_error(message: str, field: str = "sequence", **details: Any) -> JobError:
    """An INVALID_SEQUENCE error naming `field`."""
    return JobError(
        code=ErrorCode.INVALID_SEQUENCE,
        message=message,
        retryable=False,
        field=field,
        details=details,
    )


def sequence_digest(sequence_json: str) -> str:
    """The digest a sequence is known by (cache keys, batches): SHA-256 of its JSON text."""
    return hashlib.sha256(sequence_json.encode()).hexdigest()


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


def read_document(sequence_json: str, schema: bool = True) -> dict[str, Any] | JobError:
    """The sequence's JSON document, checked against Pulser's abstract-repr schema (compiled
    once, `schema`=False when the text comes from `Sequence.to_abstract_repr`, which checked it).
    """
    try:
        if schema:
            from pulser.json.abstract_repr.validation import validate_abstract_repr

            validate_abstract_repr(sequence_json, "sequence")
        document = json.loads(sequence_json)
    except Exception as exc:  # jsonschema, fastjsonschema, ValueError, AbstractReprError...
        return sequence_error(f"sequence cannot be read: {str(exc).splitlines()[0][:300]}")
    if not isinstance(document, dict):
        return sequence_error("sequence cannot be read: not a JSON object")
    return document


def declared_variables(document: dict[str, Any]) -> dict[str, tuple[str, int]]:
    """The variables a sequence declares: name -> (type, size). A mappable register (traps
    chosen at build time) adds ``qubits``, Pulser's build argument for it (size 0: any)."""
    declared = {
        str(name): (str(spec.get("type", "float")), len(spec.get("value", [0])))
        for name, spec in dict(document.get("variables") or {}).items()
        if isinstance(spec, dict)
    }
    register = document.get("register") or []
    if register and isinstance(register[0], dict) and "qid" in register[0]:
        declared["qubits"] = ("qubits", 0)
    return declared


def _register_coords(document: dict[str, Any]) -> dict[str, list[float]]:
    """Atom name -> coordinates (empty for a mappable register: its traps come at build)."""
    register = document.get("register") or []
    return {
        str(atom["name"]): [float(atom[axis]) for axis in ("x", "y", "z") if axis in atom]
        for atom in register
        if isinstance(atom, dict) and "name" in atom
    }


def _validate_register(document: dict[str, Any], device: BaseDevice) -> JobError | None:
    n_atoms = len(document.get("register") or [])
    if device.max_atom_num is not None and n_atoms > device.max_atom_num:
        return sequence_error(
            f"{n_atoms} atoms exceed the limit of {device.max_atom_num} atoms of {device.name}",
            atoms=n_atoms,
            max_atom_num=device.max_atom_num,
            device=device.name,
        )
    coords = _register_coords(document)
    if len(next(iter(coords.values()), [])) > device.dimensions:
        return sequence_error(
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
        return sequence_error(
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
            return sequence_error(
                f"atoms {', '.join(far)} lie beyond the {radius} µm radius of {device.name}",
                atoms=far,
                max_radial_distance_um=radius,
                device=device.name,
            )
    return None


def _validate_channels(document: dict[str, Any], device: BaseDevice) -> JobError | None:
    channel_ids = {str(k): str(v) for k, v in dict(document.get("channels") or {}).items()}
    missing = {name: cid for name, cid in channel_ids.items() if cid not in device.channels}
    if missing:
        listed = ", ".join(f"{name} ({cid})" for name, cid in missing.items())
        return sequence_error(
            f"channels {listed} do not exist on {device.name}",
            channels=missing,
            available=sorted(device.channels),
            device=device.name,
        )
    return None


def _device_name(document: dict[str, Any]) -> str:
    device = document.get("device")
    return str(device.get("name") if isinstance(device, dict) else device)


def validate_sequence(
    sequence_json: str,
    device: BaseDevice,
    shots: int | None = None,
    allow_device_switch: bool = False,
    *,
    parametrized: bool = False,
    deep: bool = True,
    schema: bool = True,
) -> JobError | None:
    """Check that a sequence (and shot count) can run on `device`.

    A sequence built for another device is refused (``DEVICE_MISMATCH``, naming both) unless
    `allow_device_switch`: then it is moved to `device` if it fits (a full Pulser rebuild).

    Args:
        sequence_json: Pulser abstract-repr JSON.
        device: the device it must run on now.
        shots: also check the shot count when given.
        allow_device_switch: the submitter accepts running on `device` instead.
        parametrized: free variables are allowed (a batch's sequence; its jobs give them).
        deep: also rebuild it with Pulser (every pulse against its channel's limits).
        schema: check the JSON schema (False: the text comes from `Sequence.to_abstract_repr`).

    Returns:
        None when it can run, else a structured `JobError` naming the problem.
    """
    document = read_document(sequence_json, schema)
    if isinstance(document, JobError):
        return document
    if not parametrized and declared_variables(document):
        return sequence_error("sequence still has free variables; build it before submitting")
    problem = _validate_register(document, device) or _validate_channels(document, device)
    if problem is None and shots is not None:
        problem = validate_shots(shots, device)
    if problem is not None:
        return problem
    switch = _device_name(document) != device.name
    if switch and not allow_device_switch:
        return JobError(
            code=ErrorCode.DEVICE_MISMATCH,
            message=(
                f"sequence is built for {_device_name(document)} but the QPU is {device.name}; "
                f"rebuild it on {device.name} or submit with allow_device_switch"
            ),
            field="sequence",
            details={"sequence_device": _device_name(document), "qpu_device": device.name},
        )
    if deep or switch:
        return _rebuild(sequence_json, device, switch)
    return None


def _rebuild(sequence_json: str, device: BaseDevice, switch: bool) -> JobError | None:
    """Pulser's own checks: rebuild the sequence (and move it to `device` when `switch`)."""
    from pulser import Sequence

    try:
        seq = Sequence.from_abstract_repr(sequence_json)
    except Exception as exc:  # pulser raises jsonschema, ValueError, KeyError, TypeError...
        return sequence_error(f"sequence cannot be read: {str(exc).splitlines()[0][:300]}")
    if switch:
        try:
            seq.switch_device(device)
        except Exception as exc:  # pulser's own check covers limits we do not list
            return sequence_error(
                f"sequence does not fit {device.name}: {str(exc).splitlines()[0][:300]}",
                device=device.name,
            )
    return None


class SequenceChecker:
    """`validate_sequence` once per distinct sequence: verdicts cached by digest, for one
    device at a time (a new device object, e.g. after a calibration, starts a new cache).

    Args:
        deep: rebuild each new sequence with Pulser (the owner: it trusts no client);
            the client checks the document only (the owner has the last word).
        size: verdicts kept (least recently used go first).
    """

    def __init__(self, deep: bool = True, size: int = CHECK_CACHE_SIZE) -> None:
        self.deep = deep
        self._size = size
        self._device: object | None = None
        self._cache: OrderedDict[tuple[str, bool, bool], JobError | None] = OrderedDict()
        self.misses = 0

    def check(
        self,
        sequence_json: str,
        device: BaseDevice,
        allow_device_switch: bool = False,
        *,
        parametrized: bool = False,
        schema: bool = True,
        digest: str | None = None,
    ) -> JobError | None:
        """The structured problem of `sequence_json` on `device`, or None (shots apart)."""
        if device is not self._device:
            self._device, self._cache = device, OrderedDict()
        key = (digest or sequence_digest(sequence_json), allow_device_switch, parametrized)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        self.misses += 1
        problem = validate_sequence(
            sequence_json,
            device,
            allow_device_switch=allow_device_switch,
            parametrized=parametrized,
            deep=self.deep,
            schema=schema,
        )
        self._cache[key] = problem
        if len(self._cache) > self._size:
            self._cache.popitem(last=False)
        return problem
