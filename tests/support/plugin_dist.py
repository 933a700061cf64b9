"""Install the test plugins as a distribution for an owner subprocess, at test time.

Why this way: `importlib.metadata` finds a distribution wherever a ``*.dist-info`` directory
with ``METADATA`` and ``entry_points.txt`` sits on ``sys.path``. Writing one into the test's
temporary directory and putting that directory (and the plugins' module) on the owner's
PYTHONPATH makes the owner load the plugins through the same entry-point lookup as a site's
``pip install``-ed plugins, without touching the shared virtualenv: no other test and no other
process sees them.
"""

from __future__ import annotations

import os
from pathlib import Path

SITE_PLUGINS = Path(__file__).parents[1] / "site_plugins"
DISTRIBUTION = "qsched-testplugins"
VERSION = "0.3.1"
ENTRY_POINTS = {
    "qsched.admission": {"site-flaky": "qsched_testplugins:FlakyAdmission"},
    "qsched.ordering": {"site-flaky-term": "qsched_testplugins:FlakyTerm"},
    "qsched.event_sinks": {
        "site-flaky-sink": "qsched_testplugins:FlakySink",
        "site-broken-sink": "qsched_testplugins:BrokenSink",
        "site-hung-sink": "qsched_testplugins:HungSink",
    },
    "qsched.backends": {"site-flaky-backend": "qsched_testplugins:flaky_backend"},
}


def install(into: Path) -> dict[str, str]:
    """Write the distribution's metadata under `into`; the environment a child needs to see it.

    Returns:
        ``PYTHONPATH`` for the child: `into`, the plugins' module, and the caller's path.
    """
    dist_info = into / f"{DISTRIBUTION.replace('-', '_')}-{VERSION}.dist-info"
    dist_info.mkdir(parents=True, exist_ok=True)
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {DISTRIBUTION}\nVersion: {VERSION}\n", encoding="utf-8"
    )
    sections = [
        f"[{group}]\n" + "".join(f"{name} = {value}\n" for name, value in names.items())
        for group, names in ENTRY_POINTS.items()
    ]
    (dist_info / "entry_points.txt").write_text("\n".join(sections), encoding="utf-8")
    path = [str(into), str(SITE_PLUGINS), os.environ.get("PYTHONPATH", "")]
    return {"PYTHONPATH": os.pathsep.join(p for p in path if p)}
