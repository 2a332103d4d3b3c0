"""Request bodies are limited while they stream in, before anything is spooled to disk.

An ASGI middleware in front of the application: a declared Content-Length over the route's
limit is answered 413 at once (nothing read); an undeclared or lying length is counted as it
arrives and cut off at the limit; a client that stops sending for BODY_IDLE_TIMEOUT_S gets a
408. So an upload can make the server hold (in memory or its temp directory) at most the
route's limit, and a slow client cannot pin a worker forever. Authorisation is checked before
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
    def __init__(self, app: Any, limits: dict[str, int], idle_timeout_s: float) -> None:
        self.app = app
        self.limits = limits
        self.idle_timeout_s = idle_timeout_s

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        limit = self.limits.get(scope.get("path", "")) if scope["type"] == "http" else None
        if limit is None:
            await self.app(scope, receive, send)
            return
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
