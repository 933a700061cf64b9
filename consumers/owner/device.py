"""The device jobs are validated against, read from the state: the specs the last calibration
gave (`OwnerState.device`, set by `calibration.complete` and kept in snapshots), else the
backend's own.

The specs text is parsed into a Pulser device once per change and the same object handed out
until the next (`schemas.sequence.SpecsDigest` keys its digest on that object). The device is
also what an active owner publishes on the device stream, the specs clients validate against.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from brokers.connection import Connection
from brokers.topology import Topology
from consumers.backends.base import Backend
from consumers.core.state_data import StateData
from consumers.errors import BackendFailure
from consumers.owner.publish import Publisher
from schemas.messages import DeviceSpecs
from schemas.sequence import load_device
from schemas.wire import utc_now

log = logging.getLogger("consumers.owner")


class Devices:
    """The current device of one owner process (kept across activations)."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._text: str | None = None
        self._loaded: Any = None

    def current(self, state: StateData) -> Any:
        """The last calibration's specs in `state`, else the backend's device."""
        text = state.device
        if not text:
            return self.backend.device()
        if text is not self._text and text != self._text:
            self._loaded, self._text = load_device(text), text
        return self._loaded

    def wait_for_backend(self, conn: Connection, stopped: Callable[[], bool]) -> None:
        """Learn the backend's device before taking jobs; a QPU API that does not answer is
        waited for."""
        while not stopped():
            try:
                self.backend.device()
                if self.backend.device_taken_at is None:  # a backend that does not say: now
                    self.backend.device_taken_at = utc_now()
                return
            except BackendFailure as exc:
                log.error(
                    "cannot read the device specs from %s: %s; retrying", self.backend.name, exc
                )
                conn.sleep(2.0)

    def publish(self, publisher: Publisher, topology: Topology, state: StateData) -> None:
        """Append the device specs to their stream; its last record is what clients validate
        against before submitting (a stream: reading it removes nothing)."""
        specs = DeviceSpecs(
            device=self.current(state).to_abstract_repr(),
            epoch=state.epoch,
            backend=self.backend.name,
        )
        publisher.publish(
            "", topology.device_queue, specs, message_id=specs.published_at.isoformat()
        )
