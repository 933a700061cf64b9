"""The QRMI gateway against the SDK, one run (``python -m bench qrmi``; root and MUNGE).

100 back-to-back tasks (``--jobs``) of a zero-work job, first through the unmodified ``qrmi``
client (``QuantumResource(..., ResourceType.PasqalLocal)`` -> `qsched gateway serve` -> owner),
then through the qsched SDK (`QPUClient.submit` + `JobHandle.result`) on the same owner, and the
SDK again waiting for the owner's acceptance as the gateway does (the part of the gateway's
acknowledgement that is the owner's, not HTTP's or MUNGE's). Per task:
submit acknowledged (``task_start`` returned: the owner accepted the job and gave its number;
for the SDK: the broker confirmed the publish) and start -> Completed (``task_start`` called
until ``task_status`` reads Completed, polled back to back; for the SDK: until the result
arrived). Then tasks/s, and ``task_result`` after Completed (what a user calls next; the gateway
answers it from the result the owner pushed, without asking the owner again). The qrmi client makes a MUNGE credential per request (libmunge's
default socket: a munged is started there if none answers) and the gateway decodes each.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import bench_namespace, child_env, owner_process, percentile
from producers.client import QPUClient
from schemas.enums import CommandName
from tests.support.gateway import request, start_gateway_process
from tests.support.munged import default_munged, stop
from tests.support.owners import wait_active
from tests.support.sequences import analog_sequence

NAME = "BENCHQPU"
SHOTS = 10


def _resource(port: int) -> Any:
    """A PasqalLocal resource on the gateway, acquired (as Slurm's QRMI plugin would)."""
    from qrmi import QuantumResource, ResourceType

    os.environ[f"{NAME}_QRMI_WARDEN_URL"] = f"http://127.0.0.1:{port}"
    os.environ["QRMI_JOB_UID"] = str(os.getuid())
    os.environ["QRMI_JOB_ID"] = "bench"
    resource = QuantumResource(NAME, ResourceType.PasqalLocal)
    os.environ[f"{NAME}_QRMI_JOB_ACQUISITION_TOKEN"] = resource.acquire()
    return resource


RESULTS: list[float] = []  # task_result after Completed, per qrmi task of the last run


def _qrmi_tasks(resource: Any, tasks: int) -> tuple[list[float], list[float], float]:
    from qrmi import Payload, TaskStatus

    sequence = analog_sequence()
    acks, completions = [], []
    RESULTS.clear()
    began = time.perf_counter()
    for _ in range(tasks):
        start = time.perf_counter()
        task = resource.task_start(Payload.PasqalCloud(sequence=sequence, job_runs=SHOTS))
        acks.append(time.perf_counter() - start)
        while resource.task_status(task) != TaskStatus.Completed:
            pass
        completions.append(time.perf_counter() - start)
        done = time.perf_counter()
        resource.task_result(task)  # what a user reads next (not in the rate's time)
        RESULTS.append(time.perf_counter() - done)
        began += RESULTS[-1]
    return acks, completions, tasks / (time.perf_counter() - began)


def _sdk_tasks(client: QPUClient, tasks: int) -> tuple[list[float], list[float], float]:
    sequence = analog_sequence()
    acks, completions = [], []
    began = time.perf_counter()
    for _ in range(tasks):
        start = time.perf_counter()
        handle = client.submit(sequence, SHOTS)
        acks.append(time.perf_counter() - start)
        handle.result(timeout=60)
        completions.append(time.perf_counter() - start)
    return acks, completions, tasks / (time.perf_counter() - began)


def _sdk_accepted(client: QPUClient, tasks: int) -> tuple[list[float], list[float], float]:
    """The SDK path waiting, like the gateway, for the owner's acceptance (`JobReceipt`)."""
    sequence = analog_sequence()
    acks, completions = [], []
    began = time.perf_counter()
    for _ in range(tasks):
        start = time.perf_counter()
        job = client.build_job(sequence, SHOTS).model_copy(update={"receipt": True})
        handle = client.submit_request(job)
        while job.job_id not in client.inbox.receipts:
            client.poll(0.5)
        acks.append(time.perf_counter() - start)
        handle.result(timeout=60)
        completions.append(time.perf_counter() - start)
    return acks, completions, tasks / (time.perf_counter() - began)


def _ms(values: list[float], q: float) -> float:
    return percentile(values, q) * 1000


def main(jobs: int = 100, tasks: int | None = None) -> None:
    """Print the per-task figures of both paths and what the gateway adds."""
    count = tasks or min(jobs, 100)
    work = Path(tempfile.mkdtemp(prefix="qsched-bench-qrmi-"))
    policy = work / "policy.toml"
    policy.write_text('gateway_users = ["guest"]\n')
    with contextlib.ExitStack() as stack:
        stack.enter_context(default_munged())
        settings = stack.enter_context(bench_namespace())
        stack.enter_context(
            owner_process(settings, "--backend", "synthetic", "--policy", str(policy))
        )
        client = stack.enter_context(QPUClient(settings=settings, validate_locally=False))
        wait_active(client, timeout_s=90)
        registered = client.control(  # the allocation QRMI_JOB_ID names, as a prolog would
            CommandName.ALLOCATION_STARTED, allocation="bench", user=pwd.getpwuid(os.getuid())[0]
        )
        assert registered.ok, registered.message
        process, port = start_gateway_process(
            child_env(settings), work / "gateway.log", "--policy", str(policy)
        )
        stack.callback(stop, process)
        assert request(port, "GET", "/accessible")[1]["is_accessible"]
        resource = _resource(port)
        _qrmi_tasks(resource, 5)  # warm both paths (connections, sequence cache)
        _sdk_tasks(client, 5)
        rows = {"qrmi -> gateway": _qrmi_tasks(resource, count)}
        qrmi_results = list(RESULTS)
        rows |= {
            "qsched SDK": _sdk_tasks(client, count),
            "SDK until accepted": _sdk_accepted(client, count),
        }
        resource.release(os.environ[f"{NAME}_QRMI_JOB_ACQUISITION_TOKEN"])
    print(f"qrmi: {count} back-to-back tasks of {SHOTS} shots on a zero-work backend (one run)")
    print(
        f"  {'path':<18} {'ack p50':>8} {'ack p99':>8} {'done p50':>9} {'done p99':>9} {'tasks/s':>8}"
    )
    for name, (acks, done, rate) in rows.items():
        print(
            f"  {name:<18} {_ms(acks, 0.5):7.2f}ms {_ms(acks, 0.99):7.2f}ms"
            f" {_ms(done, 0.5):8.2f}ms {_ms(done, 0.99):8.2f}ms {rate:8.1f}"
        )
    print(f"  qrmi task_result after Completed p50 {_ms(qrmi_results, 0.5):.2f} ms")
    (_, gw_done, gw_rate), (_, sdk_done, sdk_rate), _ = rows.values()
    added = _ms(gw_done, 0.5) - _ms(sdk_done, 0.5)
    print(f"  gateway adds {added:+.2f} ms p50 per task (start -> Completed); goal < 2 ms")
    print(
        f"  submit acknowledged through the gateway p50 {_ms(rows['qrmi -> gateway'][0], 0.5):.2f} ms; goal < 5 ms"
    )
    print(f"  tasks/s ratio gateway/SDK {gw_rate / sdk_rate:.2f}")
