"""Every error the service answers is JSON `{"error": "..."}`: gmi's own errors with their 4xx
(or 503/507) status, HTTP errors (405 with `Allow`), validation errors (422), and anything
unexpected as a 500 that names no internals."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from gmi.errors import (
    ConflictError,
    CorruptRegistryError,
    CorruptSpecError,
    GmiError,
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
    SearchEngineError,
    StorageError,
    StoreUnavailableError,
)
from gmi.server.state import Unauthorized, WritesDisabled
from gmi.server.writer import WriterDied

STATUS = {
    PayloadTooLargeError: 413,
    InvalidInputError: 400,
    NotFoundError: 404,
    ConflictError: 409,
    StorageError: 507,
    CorruptRegistryError: 503,
    CorruptSpecError: 503,
    SearchEngineError: 503,
    StoreUnavailableError: 503,
    WriterDied: 503,
}


def status_of(exc: GmiError) -> int:
    if isinstance(exc, Unauthorized):
        return 401
    if isinstance(exc, WritesDisabled):
        return 403
    for kind, code in STATUS.items():
        if isinstance(exc, kind):
            return code
    return 422


def _routes(routes: list) -> list:
    """Every route, with the routes of included routers (included without a prefix)."""
    out = []
    for route in routes:
        inner = getattr(route, "original_router", None)
        out.extend(_routes(inner.routes) if inner is not None else [route])
    return out


# What an anonymous client is told when a back end is down. The full message names the
# database (its URL), the Milvus file or server paths: it goes to the server's log only.
PUBLIC_MESSAGES = {
    StoreUnavailableError: "the hub's registry database is unavailable; try again later",
    SearchEngineError: "the hub's search engine is unavailable; try again later",
}
logger = logging.getLogger("gmi.server")


def public_message(exc: GmiError) -> str:
    for kind, message in PUBLIC_MESSAGES.items():
        if isinstance(exc, kind):
            logger.warning("gmi serve: %s", exc)
            return message
    return str(exc)


def error_response(exc: GmiError) -> JSONResponse:
    status = status_of(exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": public_message(exc)}, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(GmiError)
    async def gmi_error(request: Request, exc: GmiError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # Allow: every method of every route for this path
            methods = set()
            for route in _routes(app.router.routes):
                match, _ = route.matches(request.scope)
                if match in (Match.PARTIAL, Match.FULL):
                    methods |= set(getattr(route, "methods", None) or ())
            headers["Allow"] = ", ".join(sorted(methods))
        return JSONResponse(
            {"error": str(exc.detail)}, status_code=exc.status_code, headers=headers
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in exc.errors()
        )
        return JSONResponse({"error": f"invalid request: {problems}"}, status_code=422)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": "internal error"}, status_code=500)
