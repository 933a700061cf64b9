"""A simulator of the Pasqal on-premise QPU API, running jobs on pulser-simulation.

Speaks the endpoints the qsched ``qpu-api`` backend (and Warden) use, under ``/api/v1``:

- ``GET  /system``              -> ``{"data": {"specs": <Pulser device abstract repr>}}``
- ``GET  /system/operational``  -> ``{"data": {"operational_status": "UP" | "DOWN"}}``
- ``POST /jobs``                {nb_run, pulser_sequence, context} -> ``{"data": <job>}``
- ``GET  /jobs/{uid}``          -> ``{"data": <job>}``
- ``GET  /jobs?qsched_job_id=ID`` -> ``{"data": [<job>, ...]}`` (jobs whose context names ID)
- ``PUT  /jobs/{uid}/cancel``   -> ``{"data": <job>}``

where a job is ``{"uid", "status": PENDING|RUNNING|DONE|ERROR|CANCELED, "program_id", "nb_run",
"context", "result": "<JSON text with counter>" | null, "errors": [...]}``. Jobs run one at a time
in submission order, paced to ``--shot-rate``.

Faults for tests, under ``/_sim``: ``POST /_sim/operational`` ``{"status": "DOWN"}``,
``POST /_sim/fail`` ``{"count": 3, "code": 503}`` (next N requests answer that code),
``POST /_sim/hang`` ``{"count": 1, "seconds": 5}`` (next N requests stall), ``POST /_sim/refuse_cancel``
``{"refuse": true}`` (cancels answer 409), ``POST /_sim/clear`` (drop the queued failures and hangs); ``GET /_sim/stats`` counts the submissions (``POST /jobs``
that created a job) and lists every job with its context. Run: ``python infra/qpu_api_simulator/server.py --port 8088``;
the first line printed is the URL it listens on.
"""

from __future__ import annotations

import argparse
import itertools
import json
import queue
import re
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class Simulator:
    """State of the simulated QPU: jobs, operational status, injected faults."""

    def __init__(self, shot_rate_hz: float | None) -> None:
        from pulser.devices import AnalogDevice

        self.device = AnalogDevice
        self.shot_rate_hz = shot_rate_hz
        self.operational = "UP"
        self.fail: list[int] = []
        self.hang: list[float] = []
        self.refuse_cancel = False
        self.submissions = 0
        self.jobs: dict[int, dict[str, Any]] = {}
        self.cancel_flags: dict[int, threading.Event] = {}
        self.lock = threading.Lock()
        self.uids = itertools.count(1)
        self.pending: queue.Queue[int] = queue.Queue()
        threading.Thread(target=self._worker, daemon=True).start()

    def create(self, payload: dict[str, Any]) -> dict[str, Any]:
        uid = next(self.uids)
        job = {
            "uid": uid,
            "status": "PENDING",
            "program_id": uid,
            "nb_run": int(payload["nb_run"]),
            "context": payload.get("context", {}),
            "pulser_sequence": payload["pulser_sequence"],
            "result": None,
            "errors": [],
        }
        with self.lock:
            self.jobs[uid] = job
            self.cancel_flags[uid] = threading.Event()
            self.submissions += 1
        self.pending.put(uid)
        return job

    def _worker(self) -> None:
        while True:
            uid = self.pending.get()
            job = self.jobs[uid]
            if job["status"] != "PENDING":
                continue
            while self.operational != "UP":
                time.sleep(0.05)
            job["status"] = "RUNNING"
            try:
                counts = self._emulate(job, self.cancel_flags[uid])
            except Exception as exc:  # an emulation error is the job's ERROR, not the server's
                job["status"], job["errors"] = "ERROR", [str(exc)[:500]]
                continue
            if counts is None:
                job["status"] = "CANCELED"
            else:
                job["result"] = json.dumps({"counter": counts})
                job["status"] = "DONE"

    def _emulate(self, job: dict[str, Any], canceled: threading.Event) -> dict[str, int] | None:
        from pulser import Sequence
        from pulser_simulation import QutipBackendV2

        state = (
            QutipBackendV2(Sequence.from_abstract_repr(job["pulser_sequence"])).run().final_state
        )
        shots = job["nb_run"]
        if self.shot_rate_hz and canceled.wait(shots / self.shot_rate_hz):
            return None
        if canceled.is_set():
            return None
        return dict(state.sample(num_shots=shots))

    def cancel(self, uid: int) -> tuple[int, dict[str, Any]]:
        job = self.jobs[uid]
        if self.refuse_cancel:
            return HTTPStatus.CONFLICT, {"code": 409, "message": "cancel refused by the QPU"}
        if job["status"] in ("PENDING", "RUNNING"):
            self.cancel_flags[uid].set()
            if job["status"] == "PENDING":
                job["status"] = "CANCELED"
        return HTTPStatus.OK, {"data": job}


def public(job: dict[str, Any]) -> dict[str, Any]:
    """A job as the API shows it (without the sequence text)."""
    return {k: v for k, v in job.items() if k != "pulser_sequence"}


def make_handler(sim: Simulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt: str, *args: Any) -> None:  # quiet by default
            pass

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> dict[str, Any]:
            length = int(self.headers.get("Content-Length") or 0)
            return json.loads(self.rfile.read(length) or b"{}") if length else {}

        def _fault(self) -> bool:
            with sim.lock:
                hang = sim.hang.pop(0) if sim.hang else 0.0
                code = sim.fail.pop(0) if sim.fail else 0
            if hang:
                time.sleep(hang)
            if code:
                self._send(code, {"code": code, "message": "injected failure"})
                return True
            return False

        def do_GET(self) -> None:
            if self.path.startswith("/api/v1/") and self._fault():
                return
            url = urlsplit(self.path)
            if self.path == "/_sim/stats":
                jobs = [public(j) for j in list(sim.jobs.values())]
                self._send(200, {"data": {"submissions": sim.submissions, "jobs": jobs}})
            elif url.path == "/api/v1/jobs":
                wanted = parse_qs(url.query).get("qsched_job_id", [None])[0]
                found = [
                    public(j)
                    for j in list(sim.jobs.values())
                    if wanted is None or j["context"].get("qsched_job_id") == wanted
                ]
                self._send(200, {"data": found})
            elif self.path == "/api/v1/system":
                specs = json.loads(sim.device.to_abstract_repr())
                self._send(200, {"data": {"specs": specs}})
            elif self.path == "/api/v1/system/operational":
                self._send(200, {"data": {"operational_status": sim.operational}})
            elif m := re.fullmatch(r"/api/v1/jobs/(\d+)", self.path):
                job = sim.jobs.get(int(m.group(1)))
                if job is None:
                    self._send(404, {"code": 404, "message": "no such job"})
                else:
                    self._send(200, {"data": public(job)})
            else:
                self._send(404, {"code": 404, "message": f"no route {self.path}"})

        def do_POST(self) -> None:
            body = self._body()
            if self.path == "/_sim/operational":
                sim.operational = body["status"]
                self._send(200, {"data": {"operational_status": sim.operational}})
            elif self.path == "/_sim/fail":
                sim.fail.extend([int(body.get("code", 503))] * int(body.get("count", 1)))
                self._send(200, {"data": {"queued_failures": len(sim.fail)}})
            elif self.path == "/_sim/hang":
                sim.hang.extend([float(body.get("seconds", 5))] * int(body.get("count", 1)))
                self._send(200, {"data": {"queued_hangs": len(sim.hang)}})
            elif self.path == "/_sim/clear":
                with sim.lock:
                    sim.fail.clear()
                    sim.hang.clear()
                self._send(200, {"data": {"queued_failures": 0, "queued_hangs": 0}})
            elif self.path == "/_sim/refuse_cancel":
                sim.refuse_cancel = bool(body.get("refuse", True))
                self._send(200, {"data": {"refuse_cancel": sim.refuse_cancel}})
            elif self.path == "/api/v1/jobs":
                if self._fault():
                    return
                if not isinstance(body.get("nb_run"), int) or not body.get("pulser_sequence"):
                    self._send(
                        400, {"code": 400, "message": "nb_run and pulser_sequence are required"}
                    )
                    return
                self._send(200, {"data": public(sim.create(body))})
            else:
                self._send(404, {"code": 404, "message": f"no route {self.path}"})

        def do_PUT(self) -> None:
            self._body()
            if self._fault():
                return
            m = re.fullmatch(r"/api/v1/jobs/(\d+)/cancel", self.path)
            if m is None or int(m.group(1)) not in sim.jobs:
                self._send(404, {"code": 404, "message": "no such job"})
                return
            status, body = sim.cancel(int(m.group(1)))
            self._send(status, {"data": public(body["data"])} if "data" in body else body)

    return Handler


def main() -> None:
    """Serve until killed; print the URL first."""
    parser = argparse.ArgumentParser(
        description="Simulator of the Pasqal QPU API (on the emulator)."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8088, help="0 picks a free port")
    parser.add_argument("--shot-rate", type=float, default=None, help="shots per second")
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), make_handler(Simulator(args.shot_rate)))
    print(f"http://{args.host}:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
