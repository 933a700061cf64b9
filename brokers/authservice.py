"""`qsched auth serve`: the HTTP service behind RabbitMQ's ``rabbitmq_auth_backend_http``.

RabbitMQ asks four questions (form fields as in the plugin's documentation) and reads ``allow``
or ``deny`` back:

- ``/auth/user`` (username, password): the password is a MUNGE credential; allowed when
  munged decodes it (so it is neither replayed nor expired nor forged) and its UID is the unix
  user called `username`;
- ``/auth/vhost`` (username, vhost): only the configured vhosts;
- ``/auth/resource`` (username, vhost, resource, name, permission) and ``/auth/topic`` (plus
  routing_key): the role's least-privilege rules (`brokers.access`), the same regexes that
  internal users get from `qsched broker users add`.

Why one credential may be presented twice: RabbitMQ asks the user path once to authenticate and,
with ``rabbitmq_auth_backend_cache`` doing the authorisation, once more to authorise the same
login, with the same password. munged decodes a credential only once, so the service remembers
each credential it accepted (its SHA-256, never the credential) and accepts it again for the same
user at most ``presentations`` times in all, within ``presentation_window_s`` of the first;
any later presentation is a replay and refused. The cache keeps resource checks off the service.
"""

from __future__ import annotations

import hashlib
import logging
import pwd
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from brokers import munge
from brokers.access import GroupsOf, permissions_for, resource_allowed, topic_allowed, unix_groups
from brokers.settings import Settings
from schemas.policy import Policy

log = logging.getLogger(__name__)
Decoder = Callable[[str], munge.Identity]


def uid_of(user: str) -> int | None:
    """The UID of unix user `user` (None when the system does not know it)."""
    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        return None


@dataclass
class _Seen:
    user: str
    first_s: float
    count: int = 1


@dataclass
class AuthService:
    """The decisions, without HTTP: one method per path, each returning ``allow`` or ``deny``.

    Attributes:
        settings: namespace, accepted vhosts, presentation rules, munged socket.
        policy: operators (names and unix group) and epilog users.
        decode: turns a credential into an identity or raises `munge.CredentialRefused`.
        groups_of: the groups of a user (the system's group database by default).
        clock: monotonic seconds.
    """

    settings: Settings
    policy: Policy
    decode: Decoder
    groups_of: GroupsOf = unix_groups
    uid_of: Callable[[str], int | None] = uid_of
    clock: Callable[[], float] = time.monotonic
    _seen: dict[str, _Seen] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def user(self, params: dict[str, str]) -> str:
        """Authenticate: username + MUNGE credential as password."""
        user, credential = params.get("username", ""), params.get("password", "")
        digest = hashlib.sha256(credential.encode()).hexdigest()
        now = self.clock()
        rules = self.settings.auth_service
        with self._lock:
            self._prune(now)
            seen = self._seen.get(digest)
            if seen is not None:
                if seen.user == user and seen.count < rules.presentations:
                    seen.count += 1
                    return "allow"
                log.warning("refused %s: credential presented again (replay)", user)
                return "deny"
        try:
            identity = self.decode(credential)
        except munge.CredentialRefused as exc:
            log.warning("refused %s: %s", user, exc)
            return "deny"
        expected = self.uid_of(user)
        if expected is None or identity.uid != expected:
            log.warning("refused %s: credential of uid %s, not %s's", user, identity.uid, user)
            return "deny"
        with self._lock:
            self._seen[digest] = _Seen(user, now)
        return "allow"

    def _prune(self, now: float) -> None:
        """Forget credentials past their window: munged itself refuses them again from then on
        (it remembers every decoded credential until it expires)."""
        window = self.settings.auth_service.presentation_window_s
        for digest in [d for d, s in self._seen.items() if now - s.first_s > window]:
            del self._seen[digest]

    def vhost(self, params: dict[str, str]) -> str:
        """Only the configured vhosts."""
        return "allow" if params.get("vhost") in self.settings.auth_service.vhosts else "deny"

    def resource(self, params: dict[str, str]) -> str:
        """Exchange and queue checks by role."""
        if params.get("vhost") not in self.settings.auth_service.vhosts:
            return "deny"
        perms = permissions_for(
            self.policy, params.get("username", ""), self.settings.namespace, self.groups_of
        )
        ok = resource_allowed(
            perms, params.get("resource", ""), params.get("name", ""), params.get("permission", "")
        )
        if not ok:
            log.info("deny %s", params)
        return "allow" if ok else "deny"

    def topic(self, params: dict[str, str]) -> str:
        """Routing-key checks on topic exchanges by role."""
        if params.get("vhost") not in self.settings.auth_service.vhosts:
            return "deny"
        perms = permissions_for(
            self.policy, params.get("username", ""), self.settings.namespace, self.groups_of
        )
        ok = topic_allowed(
            perms,
            params.get("name", ""),
            params.get("permission", ""),
            params.get("routing_key", ""),
        )
        return "allow" if ok else "deny"


def munge_decoder(socket: Path | None) -> Decoder:
    """`munge.decode` bound to a munged socket."""
    return lambda credential: munge.decode(credential, socket)


def make_server(service: AuthService, host: str, port: int) -> ThreadingHTTPServer:
    """An HTTP server answering RabbitMQ's GET or POST requests from `service` (not started)."""
    routes = {
        "/auth/user": service.user,
        "/auth/vhost": service.vhost,
        "/auth/resource": service.resource,
        "/auth/topic": service.topic,
    }

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, query: str) -> None:
            route = routes.get(urlsplit(self.path).path)
            if route is None:
                self.send_error(404)
                return
            params = {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}
            body = route(params).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._answer(urlsplit(self.path).query)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self._answer(self.rfile.read(length).decode())

        def log_message(self, format: str, *args: object) -> None:
            log.debug(format, *args)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server
