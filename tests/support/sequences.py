"""Pulser sequences for tests, built on the real AnalogDevice layout or on MockDevice."""

from __future__ import annotations

from functools import cache

from pulser import Pulse, Register, Sequence
from pulser.devices import AnalogDevice, MockDevice


@cache
def analog_sequence(n_atoms: int = 3, duration_ns: int = 200, amplitude: float = 2.0) -> str:
    """A valid AnalogDevice sequence: `n_atoms` traps of its calibrated layout, one pulse."""
    layout = next(iter(AnalogDevice.calibrated_register_layouts.values()))
    register = layout.define_register(*range(n_atoms), qubit_ids=[f"q{i}" for i in range(n_atoms)])
    seq = Sequence(register, AnalogDevice)
    seq.declare_channel("rydberg", "rydberg_global")
    seq.add(Pulse.ConstantPulse(duration_ns, amplitude, 0.0, 0.0), "rydberg")
    return str(seq.to_abstract_repr())


def mock_sequence(coords: dict[str, tuple[float, float]], channel: str = "rydberg_global") -> str:
    """A sequence on MockDevice (which accepts nearly anything), to check other devices' limits."""
    seq = Sequence(Register(coords), MockDevice)
    target = next(iter(coords)) if channel.endswith("_local") else None
    seq.declare_channel("ch0", channel, initial_target=target)
    seq.add(Pulse.ConstantPulse(100, 1.0, 0.0, 0.0), "ch0")
    return str(seq.to_abstract_repr())
