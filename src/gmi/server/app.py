"""The FastAPI application: a thin shell over one Hub, loaded once at start-up.

    GET  /healthz                         liveness and model count
    POST /api/identify                    images (+ top, together, prompt) -> ranked models
    GET  /api/models                      the catalogue
    GET  /api/models/{name}               one model, with example prompts and image URLs
    GET  /api/models/{name}/images/{i}    an example image (JPEG thumbnail)
    GET  /api/models/{name}/similar       the models most like this one (gmi similar)
    POST /api/models                      add a model (admin): imagefolder zip or files
    DELETE /api/models/{name}             remove a model (admin)
    GET  /, /gallery, /admin              the web pages (static, offline)

Writes need `Authorization: Bearer $GMI_ADMIN_TOKEN` (compared in constant time; only the Bearer
scheme); with no token configured, writes are disabled (403). Errors are JSON `{"error": "..."}`
with a 4xx status; an unexpected failure is a 500 with no internals. CORS is off (same-origin
page only). The OpenAPI schema (/openapi.json) is generated from the routes and
gmi.server.schemas and patched by gmi.server.openapi so that it says what the server does;
schemathesis checks it against a live server in the tests.

The parts: gmi.server.routes (identify, models, pages), schemas (response models), params
(path names, bounded reads), state (what routes share), errors (JSON error answers), limits
(body size and idle limits), batcher (concurrent identifies share one encoder pass), writer
(registry writes in a worker process), openapi (schema patches).
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import Any

from anyio import CapacityLimiter
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from gmi import __version__
from gmi.errors import GmiError
from gmi.hub import Hub
from gmi.server.batcher import IdentifyBatcher
from gmi.server.errors import error_response, install_error_handlers
from gmi.server.limits import BODY_IDLE_TIMEOUT_S, FORM_OVERHEAD, BodyLimits
from gmi.server.openapi import install_openapi
from gmi.server.params import ModelNameConvertor
from gmi.server.routes import identify, models, pages
from gmi.server.state import ServiceState
from gmi.server.uploads import MAX_ARCHIVE_BYTES, MAX_IMAGE_BYTES, MAX_QUERY_IMAGES
from gmi.server.writer import Writer

UPLOAD_LIMITS = {  # the body limit of each upload route (any other path: FORM_OVERHEAD)
    "/api/identify": MAX_QUERY_IMAGES * MAX_IMAGE_BYTES + FORM_OVERHEAD,
    "/api/models": MAX_ARCHIVE_BYTES + FORM_OVERHEAD,
}


def create_app(
    home: str | Path | None = None,
    admin_token: str | None = None,
    device: str = "auto",
    store: str | None = None,
) -> FastAPI:
    """The service over one hub: the SQLite registry in `home`, or with `store` (a
    postgresql:// URL) the catalogue there and the files in `home`, shared by replicas."""
    hub = Hub(home, device=device, store=store)
    token = admin_token if admin_token is not None else os.environ.get("GMI_ADMIN_TOKEN", "")
    # Decoding runs in a small thread pool; encoding + ranking in the batcher's worker, which
    # encodes the images of all waiting requests in one pass (gmi.server.batcher). The Hub's
    # index is an immutable snapshot: nothing holds a global lock.
    service = ServiceState(
        hub=hub,
        token=token,
        decoders=CapacityLimiter(min(4, os.cpu_count() or 1)),
        batcher=IdentifyBatcher(hub),
        writer=Writer(hub.home, store),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        service.writer.close()
        service.batcher.close()

    app = FastAPI(
        title="gmi",
        version=__version__,
        description="Find the generative models that make images like yours.",
        lifespan=lifespan,
    )
    app.state.gmi = service
    app.state.hub = hub

    if hub.exists() and hub.registry().count():
        with contextlib.suppress(GmiError):  # no usable model: /healthz says so, identify too
            hub.index()  # map the packed index once, at start-up
        from gmi.encoders import load_encoder

        load_encoder(hub.settings().encoder, hub.compute_device, str(hub.home))

    # Middleware added later runs first: authorisation (admin_first, below), then body limits
    # (sizes and slow bodies refused while streaming), then the routes.
    app.add_middleware(
        BodyLimits,
        limits=UPLOAD_LIMITS,
        idle_timeout_s=float(os.environ.get("GMI_BODY_IDLE_TIMEOUT_S", BODY_IDLE_TIMEOUT_S)),
        default_limit=FORM_OVERHEAD,  # every other path: form fields at most
    )
    write_path = re.compile(rf"/api/models(/{ModelNameConvertor.regex})?")

    @app.middleware("http")
    async def admin_first(request: Request, call_next: Any) -> Response:
        """Writes are authorised before their body is read: an unauthorised upload is refused
        without spooling a byte of it."""
        path = request.url.path
        if request.method == "POST" and path in ("/api/models", "/api/identify"):
            kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if kind != "multipart/form-data":
                message = f"send multipart/form-data, not {kind or 'no content type'}"
                return JSONResponse({"error": message}, status_code=415)
        wanted = (request.method == "POST" and path == "/api/models") or (
            request.method == "DELETE" and write_path.fullmatch(path) and path != "/api/models"
        )
        if wanted:
            try:
                service.require_admin(request)
            except GmiError as exc:
                return error_response(exc)
        return await call_next(request)

    install_error_handlers(app)
    for area in (identify, models, pages):
        app.include_router(area.router)
    install_openapi(app)
    return app
