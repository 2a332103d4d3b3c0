"""What the service's routes share: one Hub, the identify batcher, the write worker and the
admin token, kept on `app.state.gmi` and handed to each route as a dependency."""

from __future__ import annotations

import contextlib
import hmac
from dataclasses import dataclass
from typing import Annotated

from anyio import CapacityLimiter
from fastapi import Depends, Request

from gmi.errors import GmiError
from gmi.hub import Hub
from gmi.server.batcher import IdentifyBatcher
from gmi.server.writer import Writer


class Unauthorized(GmiError):
    """No or a wrong bearer token (401)."""


class WritesDisabled(GmiError):
    """The server has no admin token, so it accepts no writes (403)."""


@dataclass
class ServiceState:
    hub: Hub
    token: str
    decoders: CapacityLimiter  # decoding uploads: a small thread pool
    batcher: IdentifyBatcher  # encoding + ranking: one worker, batched (gmi.server.batcher)
    writer: Writer  # registry writes: one worker process (gmi.server.writer)

    def require_admin(self, request: Request) -> None:
        if not self.token:
            raise WritesDisabled("writes are disabled: the server has no GMI_ADMIN_TOKEN")
        scheme, _, given = (request.headers.get("authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), self.token.encode()
        ):
            raise Unauthorized("a valid admin token is required (Authorization: Bearer <token>)")

    def writer_problem(self) -> str | None:
        """The write worker's trouble for /healthz (it died; a new one is ready), or None."""
        return self.writer.problem()

    def refresh(self) -> None:
        """Load what a write changed (the packed index and the learned parts it stored), so
        the next identify and /healthz see it; a registry with no usable model is reported,
        not raised. Writes by other processes are picked up by identify itself."""
        with contextlib.suppress(GmiError):
            if self.hub.exists() and self.hub.registry().count():
                self.hub.index()


def service_state(request: Request) -> ServiceState:
    return request.app.state.gmi


Service = Annotated[ServiceState, Depends(service_state)]


@dataclass(frozen=True)
class Call:
    """The service and the request together (one handler parameter): for handlers that
    check the admin token themselves, after the form is read."""

    service: ServiceState
    request: Request

    def require_admin(self) -> None:
        self.service.require_admin(self.request)


def service_call(request: Request) -> Call:
    return Call(request.app.state.gmi, request)


ServiceCall = Annotated[Call, Depends(service_call)]
