"""The gateway's HTTP surface: Starlette routes for the endpoints QRMI's ``PasqalLocal`` uses.

Each request: its body read with a size limit (a declared length over the limit is refused 413
before anything is read; a chunked body is cut off at the limit), its ``X-Munge-Cred`` decoded
(`producers.gateway.identity`), then the work done in a worker thread (`Gateway`: MUNGE and AMQP
calls block), at most ``gateway.threads`` at once. A refusal is a JSON ``{"detail", "code"}``
with the status the qrmi client expects, and a log line naming the caller's uid.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from anyio.to_thread import run_sync
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from producers.gateway.identity import Caller, Decoder, verify
from producers.gateway.service import Gateway
from producers.gateway.shapes import (
    CreateJob,
    CreateSession,
    HttpError,
    job_number,
    parse_body,
    session_id,
)

log = logging.getLogger("producers.gateway")
CREDENTIAL_HEADER = "x-munge-cred"
SESSION_HEADER = "x-warden-session"

Work = Callable[..., Any]  # (caller) or (caller, parsed body)


class Endpoints:
    """Binds the routes to a `Gateway`, a credential decoder and the limits."""

    def __init__(self, gateway: Gateway, decode: Decoder, max_body_bytes: int, threads: int):
        self.gateway = gateway
        self.decode = decode
        self.max_body_bytes = max_body_bytes
        self.limiter = anyio.CapacityLimiter(threads)

    async def _serve(
        self, request: Request, work: Work, body_model: type | None = None
    ) -> Response:
        verified: list[Caller] = []  # the caller, once the worker thread verified it
        try:
            body = await self._body(request) if body_model is not None else b""
            credential = request.headers.get(CREDENTIAL_HEADER)

            def call() -> Any:  # one trip to a worker thread: verify, then do the work
                caller = verify(credential, self.decode, self.gateway.users)
                verified.append(caller)
                if body_model is None:
                    return work(caller)
                return work(caller, parse_body(body, body_model))

            answer = await run_sync(call, limiter=self.limiter)
        except HttpError as refused:
            who = f"uid {verified[0].uid} ({verified[0].user})" if verified else _uid_of(refused)
            log.warning(
                "refused %d %s %s from %s: %s",
                refused.status,
                request.method,
                request.url.path,
                who,
                refused.detail,
            )
            return JSONResponse(refused.body(), status_code=refused.status)
        return JSONResponse(answer)

    async def _body(self, request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body_bytes):
            raise HttpError(413, _too_large(self.max_body_bytes), "BODY_TOO_LARGE")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body_bytes:
                raise HttpError(413, _too_large(self.max_body_bytes), "BODY_TOO_LARGE")
            chunks.append(chunk)
        return b"".join(chunks)

    # ---- routes ------------------------------------------------------------------------------

    async def accessible(self, request: Request) -> Response:
        """``GET /accessible`` (no credential: the qrmi client sends none here)."""
        answer = await run_sync(self.gateway.accessible, limiter=self.limiter)
        return JSONResponse(answer)

    async def specs(self, request: Request) -> Response:
        """``GET /qpu/specs``."""
        return await self._serve(request, self.gateway.specs)

    async def open_session(self, request: Request) -> Response:
        """``POST /sessions``."""
        return await self._serve(request, self.gateway.open_session, CreateSession)

    async def close_session(self, request: Request) -> Response:
        """``DELETE /sessions/{id}``."""
        session = request.path_params["session"]
        return await self._serve(
            request, lambda caller: self.gateway.close_session(caller, session_id(session))
        )

    async def create_job(self, request: Request) -> Response:
        """``POST /jobs`` with ``X-Warden-Session``."""
        header = request.headers.get(SESSION_HEADER)
        return await self._serve(
            request,
            lambda caller, body: self.gateway.create_job(caller, session_id(header), body),
            CreateJob,
        )

    async def jobs(self, request: Request) -> Response:
        """``GET /jobs``."""
        return await self._serve(request, self.gateway.jobs)

    def _numbered(
        self, method: Callable[[Caller, int], Any]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def route(request: Request) -> Response:
            text = request.path_params["job"]
            return await self._serve(request, lambda caller: method(caller, job_number(text)))

        return route

    def routes(self) -> list[Route]:
        """Every route, as Warden names them."""
        gateway = self.gateway
        return [
            Route("/accessible", self.accessible, methods=["GET"]),
            Route("/qpu/specs", self.specs, methods=["GET"]),
            Route("/sessions", self.open_session, methods=["POST"]),
            Route("/sessions/{session}", self.close_session, methods=["DELETE"]),
            Route("/jobs", self.create_job, methods=["POST"]),
            Route("/jobs", self.jobs, methods=["GET"]),
            Route("/jobs/{job}", self._numbered(gateway.job), methods=["GET"]),
            Route("/jobs/{job}/cancel", self._numbered(gateway.cancel_job), methods=["POST"]),
            Route("/jobs/{job}/logs", self._numbered(gateway.logs), methods=["GET"]),
        ]


def build_app(gateway: Gateway, decode: Decoder, max_body_bytes: int, threads: int) -> Starlette:
    """The ASGI application."""
    endpoints = Endpoints(gateway, decode, max_body_bytes, threads)

    async def not_found(request: Request, exc: Exception) -> Response:
        return JSONResponse({"detail": "Not Found", "code": "NOT_FOUND"}, status_code=404)

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return JSONResponse(
            {"detail": "Method Not Allowed", "code": "METHOD_NOT_ALLOWED"}, status_code=405
        )

    return Starlette(
        routes=endpoints.routes(), exception_handlers={404: not_found, 405: not_allowed}
    )


def _too_large(limit: int) -> str:
    return f"request body larger than {limit} bytes"


def _uid_of(refused: HttpError) -> str:
    return f"uid {refused.uid}" if refused.uid is not None else "an unverified caller"
