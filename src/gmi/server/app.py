"""The FastAPI application: a thin shell over one Hub, loaded once at start-up.

    GET  /healthz                         liveness and model count
    POST /api/identify                    images (+ top, together, prompt) -> ranked models
    GET  /api/models                      the catalogue
    GET  /api/models/{name}               one model, with example prompts and image URLs
    GET  /api/models/{name}/images/{i}    an example image (JPEG thumbnail)
    POST /api/models                      add a model (admin): imagefolder zip or files
    DELETE /api/models/{name}             remove a model (admin)
    GET  /, /gallery, /admin              the web pages (static, offline)

Writes need `Authorization: Bearer $GMI_ADMIN_TOKEN` (compared in constant time; only the Bearer
scheme); with no token configured, writes are disabled (403). Errors are JSON `{"error": "..."}`
with a 4xx status; an unexpected failure is a 500 with no internals. CORS is off (same-origin
page only). The OpenAPI schema (/openapi.json) is generated from the routes and
gmi.server.schemas and patched by gmi.server.openapi so that it says what the server does;
schemathesis checks it against a live server in the tests.
"""

from __future__ import annotations

import contextlib
import hmac
import os
import re
import tempfile
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from anyio import CapacityLimiter, to_thread
from fastapi import FastAPI, File, Form, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from gmi import __version__
from gmi.errors import (
    ConflictError,
    CorruptRegistryError,
    CorruptSpecError,
    GmiError,
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
    StorageError,
)
from gmi.hub import Hub
from gmi.imagefolder import MAX_PROMPT_CHARS
from gmi.images import open_image
from gmi.registry.store import MAX_DESCRIPTION, MAX_NAME, NAME_REGEX, ModelRecord
from gmi.server import schemas
from gmi.server.batcher import IdentifyBatcher
from gmi.server.limits import BODY_IDLE_TIMEOUT_S, FORM_OVERHEAD, BodyLimits
from gmi.server.openapi import error_responses, install_openapi
from gmi.server.uploads import (
    MAX_ARCHIVE_BYTES,
    MAX_ARCHIVE_MEMBERS,
    MAX_IMAGE_BYTES,
    MAX_QUERY_IMAGES,
    safe_extract,
)
from gmi.server.writer import Writer

DEFAULT_PAGE = 100  # catalogue models per request unless ?limit= says otherwise
MAX_PAGE = 1000

NAME_SCHEMA_PATTERN = f"^{NAME_REGEX}$"


class ModelNameConvertor(Convertor):
    """`{name:model}` in a route: exactly a valid model name (one optional "owner/"), so a
    route for /api/models/{name} never swallows /api/models/{name}/images/{index}."""

    regex = NAME_REGEX.replace("(", "(?:")

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("model", ModelNameConvertor())
ModelName = Annotated[
    str,
    PathParam(
        min_length=1, max_length=MAX_NAME, pattern=NAME_SCHEMA_PATTERN, description="model name"
    ),
]
STATUS = {
    PayloadTooLargeError: 413,
    InvalidInputError: 400,
    NotFoundError: 404,
    ConflictError: 409,
    StorageError: 507,
    CorruptRegistryError: 503,
    CorruptSpecError: 503,
}
FAVICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">'
    '<rect width="32" height="32" rx="6" fill="#2b59c3"/>'
    '<circle cx="13" cy="13" r="7" fill="none" stroke="#fff" stroke-width="3"/>'
    '<path d="M18 18l8 8" stroke="#fff" stroke-width="3" stroke-linecap="round"/></svg>'
)


class Unauthorized(GmiError):
    """No or a wrong bearer token (401)."""


class WritesDisabled(GmiError):
    """The server has no admin token, so it accepts no writes (403)."""


def _status(exc: GmiError) -> int:
    if isinstance(exc, Unauthorized):
        return 401
    if isinstance(exc, WritesDisabled):
        return 403
    for kind, code in STATUS.items():
        if isinstance(exc, kind):
            return code
    return 422


async def _read_limited(upload: UploadFile, limit: int, label: str) -> bytes:
    """Read an upload in chunks, refusing it as soon as it passes the limit."""
    chunks, size = [], 0
    while chunk := await upload.read(1024 * 1024):
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"{label}: larger than {limit // 2**20} MiB")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(
    home: str | Path | None = None, admin_token: str | None = None, device: str = "auto"
) -> FastAPI:
    hub = Hub(home, device=device)
    token = admin_token if admin_token is not None else os.environ.get("GMI_ADMIN_TOKEN", "")
    # Decoding runs in a small thread pool; encoding + ranking in the batcher's worker, which
    # encodes the images of all waiting requests in one pass (gmi.server.batcher). The Hub's
    # index is an immutable snapshot: nothing holds a global lock.
    decoders = CapacityLimiter(min(4, os.cpu_count() or 1))
    batcher = IdentifyBatcher(hub)
    writer = Writer(hub.home)  # writes run in a worker process (gmi.server.writer)

    def refresh() -> None:
        """Load what a write changed (the packed index and the learned parts it stored), so
        the next identify and /healthz see it; a registry with no usable model is reported,
        not raised. Writes by other processes are picked up by identify itself."""
        with contextlib.suppress(GmiError):
            if hub.exists() and hub.registry().count():
                hub.index()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        writer.close()
        batcher.close()

    app = FastAPI(
        title="gmi",
        version=__version__,
        description="Find the generative models that make images like yours.",
        lifespan=lifespan,
    )
    static = resources.files("gmi.server").joinpath("static")

    if hub.exists() and hub.registry().count():
        with contextlib.suppress(GmiError):  # no usable model: /healthz says so, identify too
            hub.index()  # map the packed index once, at start-up
        from gmi.encoders import load_encoder

        load_encoder(hub.settings().encoder, hub.compute_device)

    def require_admin(request: Request) -> None:
        if not token:
            raise WritesDisabled("writes are disabled: the server has no GMI_ADMIN_TOKEN")
        scheme, _, given = (request.headers.get("authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), token.encode()
        ):
            raise Unauthorized("a valid admin token is required (Authorization: Bearer <token>)")

    # Middleware added later runs first: authorisation (admin_first, below), then body limits
    # (sizes and slow bodies refused while streaming), then the routes.
    app.add_middleware(
        BodyLimits,
        limits={
            "/api/identify": MAX_QUERY_IMAGES * MAX_IMAGE_BYTES + FORM_OVERHEAD,
            "/api/models": MAX_ARCHIVE_BYTES + FORM_OVERHEAD,
        },
        idle_timeout_s=float(os.environ.get("GMI_BODY_IDLE_TIMEOUT_S", BODY_IDLE_TIMEOUT_S)),
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
                require_admin(request)
            except GmiError as exc:
                return await gmi_error(request, exc)
        return await call_next(request)

    @app.exception_handler(GmiError)
    async def gmi_error(request: Request, exc: GmiError) -> JSONResponse:
        status = _status(exc)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse({"error": str(exc)}, status_code=status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # Allow: every method of every route for this path
            methods = set()
            for route in app.router.routes:
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

    @app.get("/healthz", response_model=schemas.HealthOut)
    def healthz() -> dict[str, Any]:
        # answers from what is loaded, never by loading: a health probe must stay fast while
        # the hub changes (the index is rebuilt by the write that changed it, or by identify)
        models = hub.registry().count() if hub.exists() else 0
        problems: list[str] = []
        index = hub.loaded_index
        usable = len(index.names) if index is not None else 0
        if index is not None:
            problems = [f"model {n!r}: {why}" for n, why in index.skipped.items()]
        elif models:
            problems = [hub.index_error or "the models are not loaded yet"]
        return {
            "status": "degraded" if problems else "ok",
            "models": models,
            "usable": usable,
            "problems": problems,
            "version": __version__,
        }

    @app.post(
        "/api/identify",
        response_model=list[schemas.IdentifyOut],
        responses=error_responses(400, 404, 408, 413, 415, 503),
        summary="Rank the hub's models for example images",
    )
    async def identify(
        images: Annotated[
            list[UploadFile],
            File(
                description="one or more example images (PNG, JPEG, WebP, GIF, BMP, TIFF); "
                f"at most {MAX_IMAGE_BYTES // 2**20} MiB each",
                min_length=1,
                max_length=MAX_QUERY_IMAGES,
            ),
        ],
        top: Annotated[int, Form(ge=1, le=100, description="how many models to list")] = 5,
        together: Annotated[
            bool, Form(description="all images are examples of ONE requirement")
        ] = False,
        prompt: Annotated[
            str | None,
            Form(
                max_length=MAX_PROMPT_CHARS,
                description="the prompt you will use, if you know it (empty: none)",
            ),
        ] = None,
    ) -> list[dict[str, Any]]:
        uploads = []
        for i, upload in enumerate(images):
            label = upload.filename or f"image {i}"
            uploads.append((await _read_limited(upload, MAX_IMAGE_BYTES, label), label))

        def decode() -> list:
            # CPU work off the event loop, so it keeps answering (/healthz, other requests)
            decoded = []
            for data, label in uploads:
                decoded.append(open_image(data, label=label))
                del data
            return decoded

        decoded = await to_thread.run_sync(decode, limiter=decoders)
        uploads.clear()
        results, why = await batcher.identify(
            decoded, top=top, together=together, prompt=prompt or None
        )
        listed = sorted({m.model for r in results for m in r.results})
        descriptions = hub.registry().descriptions(listed)  # the listed models only
        out = []
        for i, (result, evidence) in enumerate(zip(results, why, strict=True)):
            entry = result.to_json()
            entry["image"] = (
                [images[j].filename or f"image {j}" for j in range(len(images))]
                if together
                else images[i].filename or f"image {i}"
            )
            for item in entry["results"]:
                item["description"] = descriptions.get(item["model"], "")
                item["evidence"] = [
                    {**e, "url": f"/api/models/{item['model']}/images/{e['image']}"}
                    for e in evidence.get(item["model"], [])
                ]
            out.append(entry)
        return out

    def model_json(record: ModelRecord, examples: int) -> dict[str, Any]:
        """A catalogue entry: the record plus example prompts read from the packed index
        (no spec file is opened); a model the index left out is listed without them."""
        prompts: list[str] = []
        with contextlib.suppress(GmiError):
            prompts = hub.index().example_prompts(record.name, examples)
        return {
            **record.to_json(),
            "example_prompts": prompts,
            "images": [
                f"/api/models/{record.name}/images/{i}"
                for i in range(min(examples, record.n_images) if prompts else 0)
            ],
        }

    @app.get(
        "/api/models",
        response_model=list[schemas.ModelDetailOut],
        summary="The catalogue, one page at a time (by name)",
        description="At most `limit` models from `offset`, sorted by name; the header "
        "`X-Total-Count` says how many there are.",
    )
    def list_models(
        response: Response,
        offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
    ) -> list[dict[str, Any]]:
        if not hub.exists():
            response.headers["X-Total-Count"] = "0"
            return []
        registry = hub.registry()
        response.headers["X-Total-Count"] = str(registry.count())
        return [model_json(record, 4) for record in registry.page(offset, limit)]

    @app.get(
        "/api/models/{name:model}/images/{index}",
        response_class=FileResponse,
        responses={
            200: {
                "content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}},
                "description": "the example image, a JPEG thumbnail",
            },
            **error_responses(404),
        },
        summary="An example image of a model",
    )
    def model_image(
        name: ModelName,
        index: Annotated[int, PathParam(ge=0, le=1_000_000, description="image index")],
    ) -> FileResponse:
        record = hub.registry().get(name) if hub.exists() else None
        if record is None:
            raise NotFoundError(f"no model named {name!r}")
        return FileResponse(hub.registry().thumbnail(record, index), media_type="image/jpeg")

    @app.get(
        "/api/models/{name:model}",
        response_model=schemas.ModelDetailOut,
        responses=error_responses(404),
        summary="One model, with example prompts and image URLs",
    )
    def get_model(name: ModelName) -> dict[str, Any]:
        if not hub.exists():
            raise NotFoundError(f"no model named {name!r}")
        return model_json(hub.registry().get(name), 12)

    @app.post(
        "/api/models",
        status_code=201,
        response_model=schemas.ModelOut,
        responses=error_responses(400, 401, 403, 408, 409, 413, 415, 503, 507),
        summary="Add a model (admin)",
        description="Send the model's generated images as an imagefolder: either a zip as "
        "`archive` (metadata.jsonl or metadata.csv naming each image and its prompt; a "
        "train/ split is read as `datasets` reads it), or the images as `files` plus the "
        "`metadata` text (metadata.jsonl lines naming the files). Needs "
        "`Authorization: Bearer <admin token>`.",
        openapi_extra={"security": [{"bearer": []}]},
    )
    async def add_model(
        request: Request,
        # required (the schema says so, see gmi.server.openapi), but checked by the handler so
        # that a missing or empty name is a 400 with a message, like any other bad name
        name: Annotated[
            str, Form(min_length=1, max_length=MAX_NAME, pattern=NAME_SCHEMA_PATTERN)
        ] = "",
        description: Annotated[
            str | None,
            Form(max_length=MAX_DESCRIPTION, description="kept on replace when omitted"),
        ] = None,
        replace: Annotated[bool, Form()] = False,
        archive: Annotated[
            UploadFile | None,
            File(description=f"imagefolder zip, at most {MAX_ARCHIVE_BYTES // 2**20} MiB"),
        ] = None,
        files: Annotated[
            list[UploadFile] | None,
            File(description="the images, named as in `metadata`", max_length=MAX_ARCHIVE_MEMBERS),
        ] = None,
        metadata: Annotated[
            str | None,
            Form(description="metadata.jsonl text for `files`", max_length=MAX_ARCHIVE_BYTES),
        ] = None,
    ) -> dict[str, Any]:
        require_admin(request)
        with tempfile.TemporaryDirectory(prefix="gmi-upload-") as tmp:
            root = Path(tmp)
            if archive is not None:
                data = await _read_limited(archive, MAX_ARCHIVE_BYTES, "archive")
                (root / "upload.zip").write_bytes(data)
                del data
                folder = await run_in_threadpool(
                    safe_extract, root / "upload.zip", root / "unpacked"
                )
            elif files and metadata:
                folder = root / "files"
                folder.mkdir()
                total = 0
                for upload in files:
                    fname = Path(upload.filename or "").name
                    if not fname or fname in ("metadata.jsonl", "metadata.csv", ".", ".."):
                        raise InvalidInputError(f"bad file name {upload.filename!r}")
                    data = await _read_limited(upload, MAX_IMAGE_BYTES, fname)
                    total += len(data)
                    if total > MAX_ARCHIVE_BYTES:
                        raise PayloadTooLargeError("upload larger than the limit")
                    (folder / fname).write_bytes(data)
                (folder / "metadata.jsonl").write_text(metadata, encoding="utf-8")
            else:
                raise InvalidInputError(
                    "send an imagefolder zip as 'archive', or 'files' "
                    "and 'metadata' (metadata.jsonl text)"
                )

            try:
                record = await writer.submit(name, folder, description, replace)
            except InvalidInputError as exc:  # name the upload's own files, not server paths
                message = str(exc)
                for prefix in (f"{folder}/", f"{root}/", str(root)):
                    message = message.replace(prefix, "")
                raise type(exc)(message) from exc
        await run_in_threadpool(refresh)
        return record

    @app.delete(
        "/api/models/{name:model}",
        response_model=schemas.RemovedOut,
        responses=error_responses(401, 403, 404, 503, 507),
        summary="Remove a model (admin)",
        openapi_extra={"security": [{"bearer": []}]},
    )
    async def delete_model(request: Request, name: ModelName) -> dict[str, Any]:
        require_admin(request)
        record = await writer.remove(name)
        await run_in_threadpool(refresh)
        return {"removed": record["name"]}

    def page(filename: str) -> HTMLResponse:
        return HTMLResponse(static.joinpath(filename).read_text(encoding="utf-8"))

    @app.get("/", include_in_schema=False)
    def index_page() -> HTMLResponse:
        return page("index.html")

    @app.get("/gallery", include_in_schema=False)
    def gallery_page() -> HTMLResponse:
        return page("gallery.html")

    @app.get("/admin", include_in_schema=False)
    def admin_page() -> HTMLResponse:
        return page("admin.html")

    @app.get("/favicon.ico", include_in_schema=False)
    @app.get("/favicon.svg", include_in_schema=False)
    def favicon() -> Response:
        return Response(FAVICON, media_type="image/svg+xml")

    @app.get("/static/{filename}", include_in_schema=False)
    def static_file(filename: str) -> Response:
        allowed = {"app.css": "text/css", "app.js": "text/javascript"}
        if filename not in allowed:  # a fixed list: no client path reaches the filesystem
            raise NotFoundError("no such file")
        return Response(
            static.joinpath(filename).read_text(encoding="utf-8"), media_type=allowed[filename]
        )

    install_openapi(app)
    app.state.hub = hub
    return app
