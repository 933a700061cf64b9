"""Real Prometheus tools for the metrics tests: `promtool` and a Prometheus server on loopback,
both from Debian's ``prometheus`` package (`make prometheus` installs it; `.ci/run` does too).

`Prometheus` runs the shipped scrape configuration (`infra/prometheus/prometheus.yml`) with its
targets pointed at the test's owner and RabbitMQ node and a 1 s scrape interval, so what the
dashboard reads is what a site's Prometheus would store.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_CONFIG = ROOT / "infra" / "prometheus" / "prometheus.yml"
DASHBOARD = ROOT / "infra" / "grafana" / "qsched-dashboard.json"


def tool(name: str) -> str:
    """The path of `name` (promtool, prometheus); the test fails saying how to install it."""
    found = shutil.which(name)
    if found is None:
        pytest.fail(
            f"this test needs {name} (Debian's prometheus package): run `make prometheus`",
            pytrace=False,
        )
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape_text(url: str) -> str:
    """One scrape of a /metrics endpoint, as text."""
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def dashboard_exprs(namespace: str, rate_interval: str) -> list[tuple[str, str]]:
    """Every PromQL expression of the shipped dashboard, by panel title, with the dashboard's
    variables as Grafana would substitute them."""
    dashboard = json.loads(DASHBOARD.read_text())
    found = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"].replace("$namespace", namespace)
            found.append((panel["title"], expr.replace("$__rate_interval", rate_interval)))
    return found


def site_config(owner: str, rabbitmq: str, scrape_interval_s: int = 1) -> str:
    """The shipped scrape configuration, its targets replaced and scraping every second."""
    import yaml

    config = yaml.safe_load(SHIPPED_CONFIG.read_text())
    config["global"]["scrape_interval"] = f"{scrape_interval_s}s"
    config["global"]["evaluation_interval"] = f"{scrape_interval_s}s"
    for job in config["scrape_configs"]:
        job["scrape_interval"] = f"{scrape_interval_s}s"
        target = owner if job["job_name"].startswith("qsched") else rabbitmq
        job["static_configs"] = [{"targets": [target]}]
    return str(yaml.safe_dump(config))


class Prometheus:
    """A Prometheus server on a free loopback port with its own data dir; a context manager."""

    def __init__(self, workdir: Path, config: str) -> None:
        self.workdir = workdir
        self.port = _free_port()
        self.config = workdir / "prometheus.yml"
        self.config.write_text(config)
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL of its HTTP API."""
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Prometheus:
        checked = subprocess.run(
            [tool("promtool"), "check", "config", str(self.config)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
        log = (self.workdir / "prometheus.log").open("wb")
        self._process = subprocess.Popen(
            [
                tool("prometheus"),
                f"--config.file={self.config}",
                f"--storage.tsdb.path={self.workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as answer:
                    if answer.status == 200:
                        return self
            except OSError:
                pass
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    "prometheus did not become ready: "
                    + (self.workdir / "prometheus.log").read_text(errors="replace")[-2000:]
                )
            time.sleep(0.2)

    def api(self, path: str, **params: str) -> Any:
        """GET one API path; its ``data`` (AssertionError on an error answer)."""
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=10) as answer:
            body = json.loads(answer.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result (a vector: one entry per series)."""
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", data
        return list(data["result"])

    def targets_up(self) -> dict[str, str]:
        """Each scrape job's target health."""
        data = self.api("targets")
        return {t["labels"]["job"]: t["health"] for t in data["activeTargets"]}

    def __exit__(self, *exc: Any) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
