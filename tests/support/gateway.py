"""Gateways for tests: a real `qsched gateway serve` process, or the same app served in this
process with a stand-in credential decoder (for tiers without munged), and a small HTTP client.

The stand-in decoder (`FakeMunge`) keeps MUNGE's rules that matter to the gateway: a credential
names a uid, decodes once (a replay is refused) and not after it expired. The `munge` tier runs
the real munged and the real qrmi client instead (tests/security/test_qrmi_flow.py).
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

from brokers.libmunge import EMUNGE_CRED_EXPIRED, EMUNGE_CRED_REPLAYED, Refusal, Refused
from brokers.munge import Identity
from brokers.settings import Settings
from producers.gateway.app import build_app
from producers.gateway.link import OwnerLink
from producers.gateway.service import Gateway
from schemas.policy import Policy

QSCHED = str(Path(sys.executable).with_name("qsched"))


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class FakeMunge:
    """Credentials ``fake:<uid>:<nonce>[:expired]`` that decode once, as munged's would."""

    seen: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def credential(self, uid: int, expired: bool = False) -> str:
        """A fresh credential of `uid`."""
        return f"fake:{uid}:{uuid.uuid4().hex}" + (":expired" if expired else "")

    def decode(self, credential: str) -> Identity:
        """The uid a credential names; a second decode is a replay."""
        parts = credential.split(":")
        if len(parts) < 3 or parts[0] != "fake" or not parts[1].isdigit():
            raise Refused(Refusal(8, "Invalid credential format"))
        uid = int(parts[1])
        with self.lock:
            if credential in self.seen:
                raise Refused(Refusal(EMUNGE_CRED_REPLAYED, "Replayed credential", uid))
            self.seen.add(credential)
        if parts[-1] == "expired":
            raise Refused(Refusal(EMUNGE_CRED_EXPIRED, "Expired credential", uid))
        return Identity(uid, uid, int(time.time()), 300)


class InProcessGateway:
    """The gateway app served by uvicorn in a thread of this process."""

    def __init__(
        self, settings: Settings, policy: Policy, users: dict[int, str], munge: FakeMunge
    ) -> None:
        self.port = free_port()
        self.users = users
        self.link = OwnerLink(settings, policy)
        service = Gateway(
            self.link, settings.gateway.job_class, policy.epilog_users, users=users.get
        )
        app = build_app(service, munge.decode, settings.gateway.max_body_bytes, threads=4)
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self, timeout_s: float = 30.0) -> InProcessGateway:
        """Serve; returns once it listens."""
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the in-process gateway did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """Stop serving and close the broker links."""
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.link.close()


def start_gateway_process(
    env: dict[str, str], log_path: Path, *args: str, user: int | None = None
) -> tuple[subprocess.Popen[bytes], int]:
    """A real `qsched gateway serve` on a free port; returns once it listens."""
    port = free_port()
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [QSCHED, "gateway", "serve", "--listen", f"127.0.0.1:{port}", *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            user=user,
        )
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return process, port
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"gateway did not start: {log_path.read_text()}") from None
            time.sleep(0.1)


def request(
    port: int,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
) -> tuple[int, Any]:
    """One HTTP request to a gateway; the status and the decoded JSON body."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        all_headers = {"content-type": "application/json"} | (headers or {})
        connection.request(method, path, body=data, headers=all_headers)
        response = connection.getresponse()
        payload = response.read()
        return response.status, json.loads(payload) if payload else None
    finally:
        connection.close()


def environment_without_qsched() -> dict[str, str]:
    """This process's environment without any QSCHED_* variable."""
    return {k: v for k, v in os.environ.items() if not k.startswith("QSCHED_")}
