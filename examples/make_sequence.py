"""Write a Pulser sequence as abstract-repr JSON, the file `qsched submit` takes.

    python examples/make_sequence.py                 # examples/sequence.json, 3 atoms
    python examples/make_sequence.py -o seq.json --atoms 4

The sequence uses three traps of AnalogDevice's calibrated layout (the owner's default device)
and one global Rydberg pulse. Your own: build a `pulser.Sequence` and save
`seq.to_abstract_repr()`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pulser import Pulse, Sequence
from pulser.devices import AnalogDevice


def build(atoms: int = 3, duration_ns: int = 500, amplitude: float = 2.0) -> Sequence:
    """A sequence on AnalogDevice: `atoms` traps of its calibrated layout, one constant pulse."""
    layout = next(iter(AnalogDevice.calibrated_register_layouts.values()))
    register = layout.define_register(*range(atoms), qubit_ids=[f"q{i}" for i in range(atoms)])
    seq = Sequence(register, AnalogDevice)
    seq.declare_channel("rydberg", "rydberg_global")
    seq.add(Pulse.ConstantPulse(duration_ns, amplitude, 0.0, 0.0), "rydberg")
    return seq


def main() -> None:
    """Parse the options and write the file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "-o", "--output", type=Path, default=Path(__file__).with_name("sequence.json")
    )
    parser.add_argument("--atoms", type=int, default=3)
    args = parser.parse_args()
    args.output.write_text(str(build(args.atoms).to_abstract_repr()), encoding="utf-8")
    print(args.output)


if __name__ == "__main__":
    main()
