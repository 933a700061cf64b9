"""Run as a test's unix user (see `tests.support.unixusers.run_as`); prints one JSON object.

    python as_user.py submit JOBS          submit JOBS jobs, wait for results
    python as_user.py matrix OTHER         the least-privilege attempts against user OTHER
    python as_user.py submit-nowait N SHOTS  submit N jobs, print their ids
    python as_user.py cancel JOB_ID        ask the owner to cancel someone's job
    python as_user.py control COMMAND      send an operator command
    python as_user.py fetch JOB_ID         look a job's result up in the event log
    python as_user.py connect              open one QPUClient (reports the error it raises)
    python as_user.py replay               connect twice with the same MUNGE credential
    python as_user.py expired              connect with a credential whose 1 s TTL has passed

Settings come from QSCHED_* (auth = munge, the broker URL without credentials).
"""

from __future__ import annotations

import json
import sys
import time

import pika
import pika.exceptions

from brokers import munge
from brokers.settings import load_settings
from brokers.topology import build_topology
from producers.client import QPUClient
from producers.errors import QschedError
from schemas.enums import CommandName
from schemas.policy import Policy
from tests.security.access import matrix
from tests.support.sequences import analog_sequence


def _login(url: str) -> str:
    try:
        pika.BlockingConnection(pika.URLParameters(url)).close()
        return "ok"
    except pika.exceptions.ProbableAuthenticationError:
        return "refused"
    except pika.exceptions.AMQPError as exc:
        return f"refused: {exc!r}"


def main(argv: list[str]) -> dict[str, object]:
    settings = load_settings()
    what = argv[0]
    user = munge.unix_user()
    fresh = lambda: munge.connection_url(settings.amqp_url, "munge", settings.munge_socket)  # noqa: E731
    if what == "submit":
        with QPUClient(settings=settings) as client:
            handles = [client.submit(analog_sequence(2), 20) for _ in range(int(argv[1]))]
            results = [h.result(timeout=120) for h in handles]
            return {
                "user": user,
                "states": [r.state.value for r in results],
                "job_ids": [r.job_id for r in results],
                "shots": [sum(r.counts.values()) for r in results],
            }
    if what == "matrix":
        return matrix(build_topology(settings, Policy()), fresh, user, argv[1])
    if what == "submit-nowait":
        with QPUClient(settings=settings, validate_locally=False) as client:
            handles = [client.submit(analog_sequence(2), int(argv[2])) for _ in range(int(argv[1]))]
            return {"user": user, "job_ids": [h.job_id for h in handles]}
    if what in ("cancel", "control"):
        with QPUClient(settings=settings, validate_locally=False) as client:
            try:
                if what == "cancel":
                    reply = client.control(CommandName.CANCEL, job_id=argv[1])
                else:
                    reply = client.control(CommandName(argv[1]))
            except QschedError as exc:
                return {"ok": False, "error": type(exc).__name__, "message": str(exc)}
            return {"ok": reply.ok, "message": reply.message}
    if what == "fetch":
        with QPUClient(settings=settings, validate_locally=False) as client:
            try:
                found = client.fetch_result(argv[1])
            except QschedError as exc:
                return {"error": type(exc).__name__, "message": str(exc)}
            return {"error": None, "found": found is not None}
    if what == "connect":
        try:
            QPUClient(settings=settings, validate_locally=False).close()
            return {"error": None}
        except QschedError as exc:
            return {"error": type(exc).__name__, "message": str(exc)}
    if what == "replay":
        url = fresh()
        return {"first": _login(url), "again": _login(url)}
    if what == "expired":
        url = munge.with_credentials(
            settings.amqp_url, user, munge.encode(settings.munge_socket, ttl_s=1)
        )
        time.sleep(2.5)  # the credential's TTL is the point of this attempt
        return {"expired": _login(url)}
    raise SystemExit(f"unknown command {what}")


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])))
