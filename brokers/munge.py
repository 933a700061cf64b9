"""MUNGE credentials: make one for this process, decode one presented by a client.

Both go through the ``munge``/``unmunge`` programs that come with MUNGE (the site's munged
must run; ``socket`` names its socket when it is not the default one). A credential proves the
unix UID of the process that made it; munged refuses to decode it twice (replay) or after its
TTL (expired), and `decode` turns those refusals into `CredentialRefused` with munged's reason.

`connection_url` is the one place where a broker URL gets its credentials: with
``auth = "munge"`` the user is this process's unix user and the password a fresh credential,
made for every connection and reconnect; nothing is stored.
"""

from __future__ import annotations

import os
import pwd
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from brokers.errors import BrokerError

TIMEOUT_S = 10.0
_FIELD = re.compile(r"^([A-Z_]+):\s+(.*)$")
_NUMBER = re.compile(r"\((\d+)\)\s*$")


class MungeError(BrokerError):
    """munge could not make a credential (munged not running, wrong socket)."""


class CredentialRefused(BrokerError):
    """unmunge refused a credential: replayed, expired, invalid, or munged unreachable."""


@dataclass(frozen=True)
class Identity:
    """Who made a credential, as munged decoded it."""

    uid: int
    gid: int
    encoded_at: int
    ttl_s: int


def _socket_args(socket: Path | None) -> list[str]:
    return ["-S", str(socket)] if socket is not None else []


def encode(socket: Path | None = None, ttl_s: int | None = None) -> str:
    """A fresh credential of this process's UID.

    Raises:
        MungeError: munge failed (its message says why).
    """
    ttl = ["-t", str(ttl_s)] if ttl_s is not None else []
    try:
        done = subprocess.run(
            ["munge", "-n", *_socket_args(socket), *ttl],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise MungeError(f"cannot run munge: {exc}") from exc
    if done.returncode != 0:
        raise MungeError(f"munge failed: {done.stderr.strip()}")
    return done.stdout.strip()


def decode(credential: str, socket: Path | None = None) -> Identity:
    """Decode `credential` once.

    Raises:
        CredentialRefused: with munged's status (e.g. "Replayed credential", "Expired
            credential", "Invalid credential") or the reason unmunge could not run.
    """
    try:
        done = subprocess.run(
            ["unmunge", *_socket_args(socket)],
            input=credential,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CredentialRefused(f"cannot run unmunge: {exc}") from exc
    fields = {}
    for line in done.stdout.splitlines():
        found = _FIELD.match(line)
        if found:
            fields[found.group(1)] = found.group(2)
    status = fields.get("STATUS", "")
    if done.returncode != 0 or not status.startswith("Success"):
        reason = status or done.stderr.strip() or f"unmunge exited {done.returncode}"
        raise CredentialRefused(reason)
    return Identity(
        uid=_number(fields["UID"]),
        gid=_number(fields["GID"]),
        encoded_at=_number(fields["ENCODE_TIME"]),
        ttl_s=int(fields.get("TTL", "0")),
    )


def _number(field: str) -> int:
    found = _NUMBER.search(field)
    if found is None:
        raise CredentialRefused(f"unexpected unmunge field {field!r}")
    return int(found.group(1))


def unix_user() -> str:
    """The name of this process's unix user (the broker user name under MUNGE auth)."""
    return pwd.getpwuid(os.getuid()).pw_name


def with_credentials(url: str, user: str, password: str) -> str:
    """`url` with its user and password replaced (both percent-quoted)."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def connection_url(url: str, auth: str, socket: Path | None = None) -> str:
    """The URL to open one connection with: as is for password auth; with MUNGE, this unix
    user and a fresh credential.

    Raises:
        MungeError: no credential could be made.
    """
    if auth != "munge":
        return url
    return with_credentials(url, unix_user(), encode(socket))
