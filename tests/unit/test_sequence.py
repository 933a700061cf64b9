"""Sequence validation against a device yields structured errors naming the problem."""

from __future__ import annotations

from pulser.devices import AnalogDevice, DigitalAnalogDevice

from schemas import ErrorCode
from schemas.sequence import load_device, validate_sequence, validate_shots
from tests.support.sequences import analog_sequence, mock_sequence


def test_a_valid_sequence_passes() -> None:
    assert validate_sequence(analog_sequence(3), AnalogDevice, shots=100) is None


def test_atoms_too_close_are_named_with_distance_and_limit() -> None:
    seq = mock_sequence({"a": (0.0, 0.0), "b": (3.0, 0.0), "c": (20.0, 0.0)})
    error = validate_sequence(seq, DigitalAnalogDevice)
    assert error is not None
    assert error.code is ErrorCode.INVALID_SEQUENCE
    assert error.field == "sequence"
    assert error.details["pairs"] == [{"atoms": ["a", "b"], "distance_um": 3.0}]
    assert error.details["min_atom_distance_um"] == DigitalAnalogDevice.min_atom_distance
    assert "a-b" in error.message


def test_too_many_atoms_names_count_and_limit() -> None:
    coords = {
        f"q{i}": (10.0 * (i % 10), 10.0 * (i // 10)) for i in range(AnalogDevice.max_atom_num + 1)
    }
    error = validate_sequence(mock_sequence(coords), AnalogDevice)
    assert error is not None
    assert error.details["atoms"] == AnalogDevice.max_atom_num + 1
    assert error.details["max_atom_num"] == AnalogDevice.max_atom_num


def test_a_channel_the_device_lacks_is_named() -> None:
    seq = mock_sequence({"a": (0.0, 0.0), "b": (10.0, 0.0)}, channel="raman_local")
    error = validate_sequence(seq, AnalogDevice)
    assert error is not None
    assert error.details["channels"] == {"ch0": "raman_local"}
    assert "rydberg_global" in error.details["available"]


def test_atoms_beyond_the_radius_are_named() -> None:
    seq = mock_sequence({"a": (0.0, 0.0), "far": (60.0, 0.0)})
    error = validate_sequence(seq, AnalogDevice)
    assert error is not None
    assert "far" in error.details["atoms"]


def test_shots_over_max_runs_are_refused_with_the_limit() -> None:
    error = validate_shots(AnalogDevice.max_runs + 1, AnalogDevice)
    assert error is not None
    assert error.code is ErrorCode.TOO_MANY_SHOTS
    assert error.field == "shots"
    assert error.details["max_runs"] == AnalogDevice.max_runs


def test_unreadable_sequence_gives_an_error_not_a_traceback() -> None:
    error = validate_sequence('{"version": "1"}', AnalogDevice)
    assert error is not None
    assert error.message.startswith("sequence cannot be read")


def test_a_device_round_trips_through_its_json() -> None:
    device = load_device(AnalogDevice.to_abstract_repr())
    assert device.max_runs == AnalogDevice.max_runs


def _digital_analog_sequence() -> str:
    from pulser import Pulse, Register, Sequence

    seq = Sequence(Register.square(2, spacing=6.0, prefix="q"), DigitalAnalogDevice)
    seq.declare_channel("ryd", "rydberg_global")
    seq.add(Pulse.ConstantPulse(200, 2.0, 0.0, 0.0), "ryd")
    return str(seq.to_abstract_repr())


def test_a_sequence_for_another_device_is_refused_naming_both_devices() -> None:
    error = validate_sequence(_digital_analog_sequence(), AnalogDevice)
    assert error is not None
    assert error.code is ErrorCode.DEVICE_MISMATCH
    assert error.details == {"sequence_device": "DigitalAnalogDevice", "qpu_device": "AnalogDevice"}
    assert "DigitalAnalogDevice" in error.message and "allow_device_switch" in error.message


def test_a_device_switch_is_allowed_when_the_job_opts_in() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # pulser notes the Rydberg level changes
        error = validate_sequence(
            _digital_analog_sequence(), AnalogDevice, allow_device_switch=True
        )
    assert error is None or error.code is not ErrorCode.DEVICE_MISMATCH


def test_a_bad_device_file_says_why() -> None:
    import pytest

    with pytest.raises(ValueError, match=r"not a valid Pulser device: \w+: \S+"):
        load_device('{"version": "1", "name": "x"}')


def _parametrized_sequence() -> str:
    from pulser import Pulse, Sequence

    layout = next(iter(AnalogDevice.calibrated_register_layouts.values()))
    seq = Sequence(layout.define_register(0, 1, 2, qubit_ids=["q0", "q1", "q2"]), AnalogDevice)
    seq.declare_channel("r", "rydberg_global")
    amp = seq.declare_variable("amp")
    det = seq.declare_variable("det", size=2, dtype=int)
    seq.add(Pulse.ConstantPulse(200, amp, det[0], 0.0), "r")
    return str(seq.to_abstract_repr())


def test_a_parametrized_sequence_is_refused_as_a_job_and_accepted_as_a_batch() -> None:
    text = _parametrized_sequence()
    error = validate_sequence(text, AnalogDevice)
    assert error is not None and "free variables" in error.message
    assert validate_sequence(text, AnalogDevice, parametrized=True) is None


def test_the_document_check_finds_what_the_pulser_rebuild_finds() -> None:
    seq = mock_sequence({"a": (0.0, 0.0), "b": (3.0, 0.0), "c": (20.0, 0.0)})
    assert validate_sequence(seq, DigitalAnalogDevice, deep=False) == validate_sequence(
        seq, DigitalAnalogDevice
    )


def test_the_checker_pays_once_per_distinct_sequence_and_again_for_a_new_device() -> None:
    from schemas.sequence import SequenceChecker

    checker = SequenceChecker(deep=False)
    for _ in range(3):
        assert checker.check(analog_sequence(3), AnalogDevice) is None
        assert checker.check(analog_sequence(2), AnalogDevice) is None
    assert checker.misses == 2
    assert checker.check(analog_sequence(3), DigitalAnalogDevice) is not None
    assert checker.misses == 3


def test_variables_are_checked_against_the_declared_ones_naming_each_bad_one() -> None:
    import json

    from schemas.sequence import declared_variables
    from schemas.variables import validate_variables

    declared = declared_variables(json.loads(_parametrized_sequence()))
    assert declared == {"amp": ("float", 1), "det": ("int", 2)}
    assert validate_variables(declared, {"amp": 1.5, "det": [1, 2]}) is None
    assert validate_variables(declared, {"amp": [1.5], "det": (1, 2)}) is None
    error = validate_variables(declared, {"amp": 1.0, "det": [1, 2], "ampp": 3})
    assert error is not None and error.code is ErrorCode.INVALID_VARIABLES
    assert error.details["unknown"] == ["ampp"] and "ampp" in error.message
    error = validate_variables(declared, {"amp": 1.0})
    assert error is not None and error.details["missing"] == ["det"]
    assert "\n" not in error.message
    error = validate_variables(declared, {"amp": "x", "det": [1.5, 2]})
    assert error is not None and set(error.details["invalid"]) == {"amp", "det"}
