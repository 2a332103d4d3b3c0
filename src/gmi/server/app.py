"""The FastAPI application: a thin shell over one Hub, loaded once at start-up.

    GET  /healthz                         liveness and model count
    POST /api/identify                    images (+ top, together, prompt) -> ranked models
    GET  /api/models                      the catalogue
    GET  /api/models/{name}               one model, with example prompts and image URLs
    GET  /api/models/{name}/images/{i}    an example image (JPEG thumbnail)
    POST /api/models                      add a model (admin): imagefolder zip or files
    DELETE /api/models/{name}             remove a model (admin)
    GET  /, /gallery, /admin              the web pages (static, offline)

Writes need `Authorization: Bearer $GMI_ADMIN_TOKEN` (compared in constant time); with no token
configured, writes are disabled. Errors are JSON `{"error": "..."}` with a 4xx status; an
unexpected failure is a 500 with no internals. CORS is off (same-origin page only).
"""

from __future__ import annotations

import hmac
import os
import tempfile
import threading
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, File, Form, Header, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from gmi import __version__
from gmi.errors import ConflictError, GmiError, InvalidInputError, NotFoundError
from gmi.hub import Hub
from gmi.images import open_image
from gmi.server.uploads import (
    MAX_ARCHIVE_BYTES,
    MAX_IMAGE_BYTES,
    MAX_QUERY_IMAGES,
    safe_extract,
)

STATUS = {InvalidInputError: 400, NotFoundError: 404, ConflictError: 409}


class Unauthorized(GmiError):
    pass


def _status(exc: GmiError) -> int:
    if isinstance(exc, Unauthorized):
        return 401 if "token" in str(exc) and "disabled" not in str(exc) else 403
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
            raise InvalidInputError(f"{label}: larger than {limit // 2**20} MiB")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(home: str | Path | None = None, admin_token: str | None = None) -> FastAPI:
    hub = Hub(home)
    token = admin_token if admin_token is not None else os.environ.get("GMI_ADMIN_TOKEN", "")
    lock = threading.Lock()  # one identify / write at a time: the model state is shared
    app = FastAPI(
        title="gmi",
        version=__version__,
        description="Find the generative models that make images like yours.",
    )
    static = resources.files("gmi.server").joinpath("static")

    if hub.exists() and hub.models():
        hub.index()  # load specs and models once, at start-up
        from gmi.encoders import load_encoder

        load_encoder(hub.settings()["encoder"])

    def require_admin(authorization: str | None) -> None:
        if not token:
            raise Unauthorized("writes are disabled: the server has no GMI_ADMIN_TOKEN")
        given = (authorization or "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise Unauthorized("a valid admin bearer token is required")

    @app.exception_handler(GmiError)
    async def gmi_error(request: Request, exc: GmiError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=_status(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in exc.errors()
        )
        return JSONResponse({"error": f"invalid request: {problems}"}, status_code=422)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": "internal error"}, status_code=500)

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "models": len(hub.models()), "version": __version__}

    @app.post("/api/identify")
    async def identify(
        images: Annotated[list[UploadFile], File(description="one or more example images")],
        top: Annotated[int, Form()] = 5,
        together: Annotated[bool, Form()] = False,
        prompt: Annotated[str | None, Form()] = None,
    ) -> list[dict[str, Any]]:
        if not 1 <= len(images) <= MAX_QUERY_IMAGES:
            raise InvalidInputError(f"send 1 to {MAX_QUERY_IMAGES} images")
        if not 1 <= top <= 100:
            raise InvalidInputError("top must be between 1 and 100")
        decoded = []
        for i, upload in enumerate(images):
            label = upload.filename or f"image {i}"
            data = await _read_limited(upload, MAX_IMAGE_BYTES, label)
            decoded.append(open_image(data, label=label))
        with lock:
            results = hub.identify(decoded, top=top, together=together, prompt=prompt or None)
            why = [hub.evidence(r) for r in results]
        descriptions = {r.name: r.description for r in hub.models()}  # one query, not one per row
        out = []
        for i, (result, evidence) in enumerate(zip(results, why, strict=True)):
            entry = result.to_json()
            entry["image"] = (
                [images[j].filename for j in range(len(images))] if together else images[i].filename
            )
            for item in entry["results"]:
                item["description"] = descriptions.get(item["model"], "")
                item["evidence"] = [
                    {**e, "url": f"/api/models/{item['model']}/images/{e['image']}"}
                    for e in evidence.get(item["model"], [])
                ]
            out.append(entry)
        return out

    def model_json(name: str, examples: int) -> dict[str, Any]:
        record, spec = hub.info(name)
        return {
            **record.to_json(),
            "example_prompts": spec.prompt_texts[:examples],
            "images": [
                f"/api/models/{name}/images/{i}" for i in range(min(examples, record.n_images))
            ],
        }

    @app.get("/api/models")
    def list_models() -> list[dict[str, Any]]:
        return [model_json(r.name, 4) for r in hub.models()]

    @app.get("/api/models/{name:path}/images/{index}")
    def model_image(name: str, index: int) -> FileResponse:
        record = hub.registry().get(name) if hub.exists() else None
        if record is None:
            raise NotFoundError(f"no model named {name!r}")
        return FileResponse(hub.registry().thumbnail(record, index), media_type="image/jpeg")

    @app.get("/api/models/{name:path}")
    def get_model(name: str) -> dict[str, Any]:
        return model_json(name, 12)

    @app.post("/api/models", status_code=201)
    async def add_model(
        name: Annotated[str, Form()],
        description: Annotated[str, Form()] = "",
        replace: Annotated[bool, Form()] = False,
        archive: Annotated[UploadFile | None, File()] = None,
        files: Annotated[list[UploadFile] | None, File()] = None,
        metadata: Annotated[str | None, Form()] = None,
        authorization: Annotated[str | None, Header()] = None,
    ) -> dict[str, Any]:
        require_admin(authorization)
        with tempfile.TemporaryDirectory(prefix="gmi-upload-") as tmp:
            root = Path(tmp)
            if archive is not None:
                data = await _read_limited(archive, MAX_ARCHIVE_BYTES, "archive")
                (root / "upload.zip").write_bytes(data)
                folder = safe_extract(root / "upload.zip", root / "unpacked")
            elif files and metadata:
                folder = root / "files"
                folder.mkdir()
                total = 0
                for upload in files:
                    fname = Path(upload.filename or "").name
                    if not fname or fname in ("metadata.jsonl", ".", ".."):
                        raise InvalidInputError(f"bad file name {upload.filename!r}")
                    data = await _read_limited(upload, MAX_IMAGE_BYTES, fname)
                    total += len(data)
                    if total > MAX_ARCHIVE_BYTES:
                        raise InvalidInputError("upload larger than the limit")
                    (folder / fname).write_bytes(data)
                (folder / "metadata.jsonl").write_text(metadata, encoding="utf-8")
            else:
                raise InvalidInputError(
                    "send an imagefolder zip as 'archive', or 'files' "
                    "and 'metadata' (metadata.jsonl text)"
                )
            with lock:
                record = hub.submit_folder(
                    name, folder, description=description, replace=replace, progress=False
                )
        return record.to_json()

    @app.delete("/api/models/{name:path}")
    def delete_model(
        name: str, authorization: Annotated[str | None, Header()] = None
    ) -> dict[str, Any]:
        require_admin(authorization)
        with lock:
            record = hub.remove(name)
        return {"removed": record.name}

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

    @app.get("/static/{filename}", include_in_schema=False)
    def static_file(filename: str) -> Response:
        allowed = {"app.css": "text/css", "app.js": "text/javascript"}
        if filename not in allowed:  # a fixed list: no client path reaches the filesystem
            raise NotFoundError("no such file")
        return Response(
            static.joinpath(filename).read_text(encoding="utf-8"), media_type=allowed[filename]
        )

    app.state.hub = hub
    return app
