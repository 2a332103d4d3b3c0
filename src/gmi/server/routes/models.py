"""The catalogue (GET /api/models..., similar models) and the admin writes (POST / DELETE
/api/models)."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from gmi.errors import GmiError, InvalidInputError, NotFoundError, PayloadTooLargeError
from gmi.hub import Hub
from gmi.identify.similar import MAX_TOP as MAX_SIMILAR
from gmi.model_hash import parse_model_id
from gmi.registry.files import ModelRecord
from gmi.registry.validation import MAX_DESCRIPTION, MAX_NAME, validate_description
from gmi.server import schemas
from gmi.server.openapi import error_responses
from gmi.server.params import NAME_SCHEMA_PATTERN, ModelName, read_limited
from gmi.server.state import Service, ServiceCall, ServiceState
from gmi.server.uploads import (
    MAX_ARCHIVE_BYTES,
    MAX_FORM_FILES,
    MAX_IMAGE_BYTES,
    MAX_METADATA_CHARS,
    safe_extract,
)

MAX_MODEL_HASHES = 64
DEFAULT_PAGE = 100  # catalogue models per request unless ?limit= says otherwise
MAX_PAGE = 1000

router = APIRouter()


def model_json(service: ServiceState, record: ModelRecord, examples: int) -> dict[str, Any]:
    """A catalogue entry: the record plus example prompts read from the packed index
    (no spec file is opened); a model the index left out is listed without them."""
    prompts: list[str] = []
    with contextlib.suppress(GmiError):
        prompts = service.hub.index().example_prompts(record.name, examples)
    return {
        **record.to_json(),
        "example_prompts": prompts,
        "images": [
            f"/api/models/{record.name}/images/{i}"
            for i in range(min(examples, record.n_images) if prompts else 0)
        ],
    }


@router.get(
    "/api/models",
    response_model=list[schemas.ModelDetailOut],
    summary="The catalogue, one page at a time (by name)",
    description="At most `limit` models from `offset`, sorted by name; the header "
    "`X-Total-Count` says how many there are.",
)
def list_models(
    service: Service,
    response: Response,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
) -> list[dict[str, Any]]:
    if not service.hub.exists():
        response.headers["X-Total-Count"] = "0"
        return []
    registry = service.hub.registry()
    response.headers["X-Total-Count"] = str(registry.count())
    return [model_json(service, record, 4) for record in registry.page(offset, limit)]


@router.get(
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
    service: Service,
    name: ModelName,
    index: Annotated[int, PathParam(ge=0, le=1_000_000, description="image index")],
) -> FileResponse:
    record = service.hub.registry().get(name) if service.hub.exists() else None
    if record is None:
        raise NotFoundError(f"no model named {name!r}")
    return FileResponse(service.hub.registry().thumbnail(record, index), media_type="image/jpeg")


@router.get(
    "/api/models/{name:model_any}/similar",
    response_model=list[schemas.SimilarOut],
    responses=error_responses(400, 404, 503),
    summary="The models whose images are most like this model's own spec images",
    description="Its spec images ranked as one requirement, itself left out (`gmi similar`).",
)
def similar_models(
    service: Service,
    name: ModelName,
    top: Annotated[int, Query(ge=1, le=MAX_SIMILAR)] = 5,
) -> list[dict[str, Any]]:
    if not service.hub.exists():
        raise NotFoundError(f"no model named {name!r}")
    return [m.to_json() for m in service.hub.similar(name, top=top)]


@router.get(
    "/api/models/{name:model}",
    response_model=schemas.ModelDetailOut,
    responses=error_responses(404),
    summary="One model, with example prompts and image URLs",
)
def get_model(service: Service, name: ModelName) -> dict[str, Any]:
    if not service.hub.exists():
        raise NotFoundError(f"no model named {name!r}")
    return model_json(service, service.hub.registry().get(name), 12)


@router.post(
    "/api/models",
    status_code=201,
    response_model=schemas.SubmittedOut,
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
    call: ServiceCall,
    # required (the schema says so, see gmi.server.openapi), but checked by the handler so
    # that a missing or empty name is a 400 with a message, like any other bad name
    name: Annotated[str, Form(min_length=1, max_length=MAX_NAME, pattern=NAME_SCHEMA_PATTERN)] = "",
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
        File(description="the images, named as in `metadata`", max_length=MAX_FORM_FILES),
    ] = None,
    metadata: Annotated[
        str | None,
        Form(description="metadata.jsonl text for `files`", max_length=MAX_METADATA_CHARS),
    ] = None,
    model_hash: Annotated[
        list[str] | None,
        Form(
            description="the checkpoint's identities, repeatable: AutoV1/AutoV2/AutoV3 hex, "
            "sha256 (0x allowed), blake3:<hex>, a Civitai AIR URN or the file name; images "
            "naming one are exact (or, a file name, named) matches. Kept on replace when "
            "omitted",
            max_length=MAX_MODEL_HASHES,
        ),
    ] = None,
) -> dict[str, Any]:
    call.require_admin()
    service = call.service
    validate_description(description)  # (a NUL, which PostgreSQL refuses) before the upload
    for value in model_hash or []:
        parse_model_id(value)  # a bad identity is a 400 before the upload is unpacked
    with tempfile.TemporaryDirectory(prefix="gmi-upload-") as tmp:
        root = Path(tmp)
        if archive is not None:
            data = await read_limited(archive, MAX_ARCHIVE_BYTES, "archive")
            (root / "upload.zip").write_bytes(data)
            del data
            folder = await run_in_threadpool(safe_extract, root / "upload.zip", root / "unpacked")
        elif files and metadata:
            folder = root / "files"
            folder.mkdir()
            total = 0
            for upload in files:
                fname = Path(upload.filename or "").name
                if not fname or fname in ("metadata.jsonl", "metadata.csv", ".", ".."):
                    raise InvalidInputError(f"bad file name {upload.filename!r}")
                data = await read_limited(upload, MAX_IMAGE_BYTES, fname)
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
            record = await service.writer.submit(
                name, folder, description, replace, list(model_hash) if model_hash else None
            )
        except InvalidInputError as exc:  # name the upload's own files, not server paths
            message = str(exc)
            for prefix in (f"{folder}/", f"{root}/", str(root)):
                message = message.replace(prefix, "")
            raise type(exc)(message) from exc
    await run_in_threadpool(service.refresh)
    duplicate = await run_in_threadpool(copied_model, service.hub, record["name"])
    return {**record, "near_duplicate_of": duplicate}


def copied_model(hub: Hub, name: str) -> str | None:
    """The model a just-stored one is a near-duplicate of; a check that fails is no reason
    to answer the stored model with an error."""
    try:
        found = hub.near_duplicate(name)
    except GmiError:
        return None
    return found.model if found else None


@router.delete(
    "/api/models/{name:model}",
    response_model=schemas.RemovedOut,
    responses=error_responses(401, 403, 404, 503, 507),
    summary="Remove a model (admin)",
    openapi_extra={"security": [{"bearer": []}]},
)
async def delete_model(service: Service, request: Request, name: ModelName) -> dict[str, Any]:
    service.require_admin(request)
    record = await service.writer.remove(name)
    await run_in_threadpool(service.refresh)
    return {"removed": record["name"]}
