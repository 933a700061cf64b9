"""QRMI's own PasqalLocal flow, run by a test as a unix user with the unmodified qrmi wheel.

Configured the QRMI way, by environment: ``<NAME>_QRMI_WARDEN_URL``, ``QRMI_JOB_UID``,
``QRMI_JOB_ID`` (what Slurm's QRMI plugin sets), then after ``acquire()`` the
``<NAME>_QRMI_JOB_ACQUISITION_TOKEN`` the plugin would export. Prints one JSON line.

    qrmi_user.py flow NAME SEQUENCE_FILE SHOTS   acquire, target, run, stop, release, refused
    qrmi_user.py peek NAME TASK_ID               another user's task: status and result
    qrmi_user.py hold NAME SEQUENCE_FILE SHOTS   acquire and start a task, leave both open
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from qrmi import Payload, QuantumResource, ResourceType, TaskStatus

FINAL = (TaskStatus.Completed, TaskStatus.Failed, TaskStatus.Cancelled)


def _wait(resource: QuantumResource, task: str, timeout_s: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        status = resource.task_status(task)
        if status in FINAL or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


def _error(call: Any) -> str | None:
    try:
        call()
    except Exception as exc:  # the qrmi wheel raises its own QrmiError subclasses
        return f"{type(exc).__name__}: {exc}"
    return None


def flow(name: str, sequence: str, shots: int) -> dict[str, Any]:
    resource = QuantumResource(name, ResourceType.PasqalLocal)
    out: dict[str, Any] = {"accessible": resource.status().to_dict()["status"]}
    token = resource.acquire()
    os.environ[f"{name}_QRMI_JOB_ACQUISITION_TOKEN"] = token
    out["token"] = token
    devices = json.loads(resource.target().value)
    out["device"] = devices[0]["device_type"]
    task = resource.task_start(Payload.PasqalCloud(sequence=sequence, job_runs=shots))
    out["task"] = task
    out["status"] = str(_wait(resource, task))
    counter = json.loads(resource.task_result(task).value)["counter"]
    out["counts"] = sum(counter.values())
    long_task = resource.task_start(Payload.PasqalCloud(sequence=sequence, job_runs=2000))
    resource.task_stop(long_task)
    out["stopped"] = str(_wait(resource, long_task))
    out["logs"] = resource.task_logs(task)
    resource.release(token)
    out["after_release"] = _error(
        lambda: resource.task_start(Payload.PasqalCloud(sequence=sequence, job_runs=shots))
    )
    return out


def peek(name: str, task: str) -> dict[str, Any]:
    resource = QuantumResource(name, ResourceType.PasqalLocal)
    return {
        "status": _error(lambda: resource.task_status(task)),
        "result": _error(lambda: resource.task_result(task)),
        "stop": _error(lambda: resource.task_stop(task)),
    }


def hold(name: str, sequence: str, shots: int) -> dict[str, Any]:
    resource = QuantumResource(name, ResourceType.PasqalLocal)
    token = resource.acquire()
    os.environ[f"{name}_QRMI_JOB_ACQUISITION_TOKEN"] = token
    task = resource.task_start(Payload.PasqalCloud(sequence=sequence, job_runs=shots))
    return {"token": token, "task": task}


def main() -> None:
    mode, name = sys.argv[1], sys.argv[2]
    if mode == "peek":
        out = peek(name, sys.argv[3])
    else:
        with open(sys.argv[3], encoding="utf-8") as f:
            sequence = f.read()
        out = (flow if mode == "flow" else hold)(name, sequence, int(sys.argv[4]))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
