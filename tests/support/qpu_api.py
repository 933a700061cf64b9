"""Running the QPU API simulator (infra/qpu_api_simulator) as a real HTTP server for tests."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SERVER = Path(__file__).parents[2] / "infra" / "qpu_api_simulator" / "server.py"


@contextmanager
def qpu_api_simulator(shot_rate_hz: float | None = None) -> Iterator[str]:
    """Start the simulator on a free loopback port; yields its base URL."""
    args = [sys.executable, str(SERVER), "--port", "0"]
    if shot_rate_hz:
        args += ["--shot-rate", str(shot_rate_hz)]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), url
        yield url
    finally:
        process.kill()
        process.wait()


def sim(url: str, what: str, **body: Any) -> dict[str, Any]:
    """Tell the simulator to misbehave (``operational``, ``fail``, ``hang``, ``refuse_cancel``,
    ``clear``)."""
    request = urllib.request.Request(
        f"{url}/_sim/{what}",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return dict(json.loads(response.read()))


def sim_stats(url: str) -> dict[str, Any]:
    """What the simulator saw: ``submissions`` (jobs created) and ``jobs`` (with contexts)."""
    with urllib.request.urlopen(f"{url}/_sim/stats", timeout=5) as response:
        return dict(json.loads(response.read())["data"])
