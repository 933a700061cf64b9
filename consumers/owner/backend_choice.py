"""The backend the owner runs on: the built-in one its settings name, or a site's plugin backend.

A plugin backend (any other name, looked up in the ``qsched.backends`` entry points) is built
from the policy's options for it and wrapped in the plugin time limits (`consumers.plugins.guarded`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from brokers.errors import SettingsError
from brokers.settings import Settings
from consumers.backends import BACKENDS
from consumers.backends.base import Backend, load_default_device
from consumers.plugins.guarded import GuardedBackend
from consumers.plugins.loading import PluginError, build


def make_backend(
    settings: Settings, options: Mapping[str, Any] | None = None, timeout_s: float = 1.0
) -> Backend:
    """The backend named by ``settings.owner.backend``, configured from the settings.

    Args:
        options: keyword arguments for a plugin backend's factory (the policy's
            ``[plugins.options.<name>]``); the built-in backends take theirs from `settings`.
        timeout_s: time limit of a plugin backend's calls (`consumers.plugins.guarded`).

    Raises:
        PluginError: a plugin backend that is not installed, fails to build, or is no Backend.
    """
    owner = settings.owner
    if owner.backend not in BACKENDS:
        return _plugin_backend(settings, options or {}, timeout_s)
    remote = owner.backend in ("qpu-api", "qrmi")  # these ask the QPU for its device
    device = load_default_device(owner.device_file) if not remote else None
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
    if owner.backend == "qrmi":
        from consumers.backends.qrmi import QrmiBackend

        if not owner.qrmi_resource:
            raise SettingsError(
                "the qrmi backend needs owner.qrmi_resource (QSCHED_OWNER__QRMI_RESOURCE)"
            )
        return QrmiBackend(
            owner.qrmi_resource,
            owner.qrmi_type,
            poll_s=owner.qrmi_poll_s,
            run_timeout_s=owner.qrmi_run_timeout_s,
            journal=owner.qrmi_journal,
        )
    raise AssertionError(owner.backend)  # every built-in name is handled above


def _plugin_backend(settings: Settings, options: Mapping[str, Any], timeout_s: float) -> Backend:
    loaded = build("backends", settings.owner.backend, options, settings)
    if not isinstance(loaded.plugin, Backend):
        raise PluginError(
            f"backend plugin {loaded.name!r} ({loaded.origin.value}) built "
            f"{type(loaded.plugin).__name__}, which is no consumers.backends.base.Backend"
        )
    return GuardedBackend(loaded.plugin, loaded.name, timeout_s)
