"""The owner's wiring (issue 23 step 2): the device jobs are validated against is read from the
state (the last calibration's specs, else the backend's), and the effects executor, the lanes
and the command reads are not given the shell."""

from __future__ import annotations

import ast
from pathlib import Path

from pulser.devices import AnalogDevice, DigitalAnalogDevice

from consumers.backends.synthetic import SyntheticBackend
from consumers.core.state import OwnerState
from consumers.owner.device import Devices

ROOT = Path(__file__).resolve().parents[2]


def test_without_calibrated_specs_the_device_is_the_backends() -> None:
    backend = SyntheticBackend()
    assert Devices(backend).current(OwnerState()) is backend.device()


def test_a_calibrations_specs_in_the_state_are_the_device_parsed_once_per_change() -> None:
    devices = Devices(SyntheticBackend())
    state = OwnerState()
    state.device = AnalogDevice.to_abstract_repr()
    first = devices.current(state)
    assert first.name == AnalogDevice.name
    assert devices.current(state) is first  # the same object: its specs digest is kept
    state.device = DigitalAnalogDevice.to_abstract_repr()  # the next calibration's specs
    assert devices.current(state).name == DigitalAnalogDevice.name


def _imports(module: str) -> set[str]:
    tree = ast.parse((ROOT / module).read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_effects_lanes_and_command_reads_are_not_given_the_shell() -> None:
    for module in (
        "consumers/owner/effects.py",
        "consumers/owner/lanes.py",
        "consumers/owner/command_io.py",
    ):
        assert "consumers.owner.shell" not in _imports(module), module
        assert "consumers.owner.wiring" not in _imports(module), module
