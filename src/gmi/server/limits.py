"""Request bodies are limited while they stream in, before anything is spooled to disk.

An ASGI middleware in front of the application: a declared Content-Length over the route's
limit is answered 413 at once (nothing read); an undeclared or lying length is counted as it
arrives and cut off at the limit; a client that stops sending for BODY_IDLE_TIMEOUT_S gets a
408. So an upload can make the server hold (in memory or its temp directory) at most the
route's limit (any other path: the strictest limit), and a slow client cannot pin a worker
forever. Authorisation is checked before
the body too (gmi.server.app), so an unauthorised upload is refused without reading it.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.exceptions import HTTPException

FORM_OVERHEAD = 1024 * 1024  # multipart headers and the small form fields
BODY_IDLE_TIMEOUT_S = 30.0


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than the {limit // 2**20} MiB allowed here")


class BodyTimeout(HTTPException):
    def __init__(self, seconds: float) -> None:
        super().__init__(408, f"the request body stalled for {seconds:.0f} s")


class BodyLimits:
    """Every HTTP request is limited: the upload routes by their own limit, any other path
    (an unknown one, or a spelling of a known one such as `/api/identify%0a`, which the
    router's `$` would still match) by the strictest, `default_limit`. A path holding a
    control character is no route at all: 404 before its body is read."""

    def __init__(
        self, app: Any, limits: dict[str, int], idle_timeout_s: float, default_limit: int
    ) -> None:
        self.app = app
        self.limits = limits
        self.idle_timeout_s = idle_timeout_s
        self.default_limit = default_limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if any(ord(c) < 32 or ord(c) == 127 for c in path):
            await _answer(send, HTTPException(404, "Not Found"))
            return
        limit = self.limits.get(path, self.default_limit)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _answer(send, BodyTooLarge(limit))
            return
        received = 0

        async def limited_receive() -> dict:
            nonlocal received
            try:
                message = await asyncio.wait_for(receive(), self.idle_timeout_s)
            except TimeoutError as exc:
                raise BodyTimeout(self.idle_timeout_s) from exc
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, limited_receive, send)


async def _answer(send: Any, error: HTTPException) -> None:
    body = json.dumps({"error": error.detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": error.status_code,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
