"""QPU backends behind one port (`consumers.backends.base.Backend`)."""

from __future__ import annotations

from brokers.settings import Settings
from consumers.backends.base import Backend, load_default_device

BACKENDS = ("emulator", "qpu-api", "synthetic")


def make_backend(settings: Settings) -> Backend:
    """The backend named by ``settings.owner.backend``, configured from the settings."""
    owner = settings.owner
    device = load_default_device(owner.device_file) if owner.backend != "qpu-api" else None
    if owner.backend == "emulator":
        from consumers.backends.emulator import EmulatorBackend

        return EmulatorBackend(owner.shot_rate_hz, owner.progress_every_shots, device)
    if owner.backend == "synthetic":
        from consumers.backends.synthetic import SyntheticBackend

        return SyntheticBackend(
            owner.shot_rate_hz,
            owner.synthetic_failure_rate,
            owner.progress_every_shots,
            owner.synthetic_seed,
            device,
        )
    if owner.backend == "qpu-api":
        from consumers.backends.qpu_api import QPUApiBackend

        return QPUApiBackend(
            owner.qpu_api_url,
            poll_s=owner.qpu_api_poll_s,
            timeout_s=owner.qpu_api_timeout_s,
            max_attempts=owner.qpu_api_request_attempts,
            run_timeout_s=owner.qpu_api_run_timeout_s,
        )
    raise ValueError(
        f"backend {owner.backend!r} is not available; choose one of {', '.join(BACKENDS)}"
    )
