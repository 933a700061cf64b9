"""A submitter process for chaos runs: sends jobs at a random pace, then waits for every result.

    python -m tests.chaos.chaos_submitter --url URL --namespace NS --jobs 80 --seed 1 --out FILE

Jobs go in small batches; a batch the broker did not confirm (a failover, a restart, a nack) is
sent again with the same job ids (the owner drops a copy of an id it already has). Then every
result is awaited on the client's reply queue; a result not received within the deadline is
looked up in the event log and marked ``via: log`` (the invariant checker counts it as not
delivered). One JSON line per job goes to `--out`.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

from brokers.settings import load_settings
from producers.client import QPUClient
from producers.errors import ResultTimeout
from schemas.jobs import JobResult
from tests.support.sequences import analog_sequence


def _await(client: QPUClient, job_id: str, deadline: float) -> tuple[str, JobResult | None]:
    """The job's result from the reply queue ("reply"), else from the log ("log")."""
    while True:
        try:
            return "reply", client.wait_result(job_id, timeout=max(deadline - time.monotonic(), 1))
        except ResultTimeout:
            break
        except Exception as exc:
            print(f"waiting for {job_id}: {exc!r}; reconnecting", file=sys.stderr)
            time.sleep(0.5)
            try:
                client.reconnect()
            except Exception:
                if time.monotonic() > deadline:
                    break
    try:
        return "log", client.fetch_result(job_id)
    except Exception:
        return "none", None


def main(argv: list[str] | None = None) -> int:
    """Run one submitter; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--jobs", type=int, default=80)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-shots", type=int, default=60)
    parser.add_argument("--result-timeout-s", type=float, default=300.0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    settings = load_settings(amqp_url=args.url, namespace=args.namespace)
    client = QPUClient(settings=settings)
    sequence = analog_sequence(2)
    jobs = [client.build_job(sequence, rng.randint(5, args.max_shots)) for _ in range(args.jobs)]
    resent = 0
    sent = 0
    while sent < len(jobs):
        batch = jobs[sent : sent + rng.randint(1, 6)]
        try:
            client.submit_many(batch)
        except Exception as exc:
            resent += 1
            print(f"resending {len(batch)} jobs after {exc!r}", file=sys.stderr)
            time.sleep(0.5)
            try:
                client.reconnect()
            except Exception as again:
                print(f"reconnect failed: {again!r}", file=sys.stderr)
            continue
        sent += len(batch)
        time.sleep(rng.uniform(0.02, 0.4))
    deadline = time.monotonic() + args.result_timeout_s
    with args.out.open("w") as out:
        for job in jobs:
            via, result = _await(client, job.job_id, deadline)
            if result is None:
                out.write(json.dumps({"job_id": job.job_id, "via": "none"}) + "\n")
                continue
            record = {"job_id": job.job_id, "via": via, "result": result.model_dump(mode="json")}
            out.write(json.dumps(record) + "\n")
        out.write(json.dumps({"resent_batches": resent}) + "\n")
    client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
