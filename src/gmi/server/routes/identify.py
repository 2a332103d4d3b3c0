"""POST /api/identify and GET /healthz."""

from __future__ import annotations

from typing import Annotated, Any

from anyio import to_thread
from fastapi import APIRouter, File, Form, UploadFile

from gmi import __version__
from gmi.imagefolder import MAX_PROMPT_CHARS
from gmi.images import open_image
from gmi.server import schemas
from gmi.server.openapi import error_responses
from gmi.server.params import read_limited
from gmi.server.state import Service
from gmi.server.uploads import MAX_IMAGE_BYTES, MAX_QUERY_IMAGES

router = APIRouter()


@router.get("/healthz", response_model=schemas.HealthOut)
def healthz(
    service: Service,
) -> dict[str, Any]:
    # answers from what is loaded, never by loading: a health probe must stay fast while
    # the hub changes (the index is rebuilt by the write that changed it, or by identify)
    models = service.hub.registry().count() if service.hub.exists() else 0
    problems: list[str] = []
    index = service.hub.loaded_index
    usable = len(index.names) if index is not None else 0
    if index is not None:
        problems = [f"model {n!r}: {why}" for n, why in index.skipped.items()]
    elif models:
        problems = [service.hub.index_error or "the models are not loaded yet"]
    writer = service.writer_problem()
    if writer:
        problems.append(writer)
    if service.hub.search_error:  # the last search failed: say so (no URI or path here)
        problems.append("the search engine failed the last identification")
    return {
        "status": "degraded" if problems else "ok",
        "models": models,
        "usable": usable,
        "problems": problems,
        "version": __version__,
    }


@router.post(
    "/api/identify",
    response_model=list[schemas.IdentifyOut],
    responses=error_responses(400, 404, 408, 413, 415, 503),
    summary="Rank the hub's models for example images",
)
async def identify(
    service: Service,
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
        uploads.append((await read_limited(upload, MAX_IMAGE_BYTES, label), label))

    def decode() -> list:
        # CPU work off the event loop, so it keeps answering (/healthz, other requests)
        decoded = []
        for data, label in uploads:
            decoded.append(open_image(data, label=label))
            del data
        return decoded

    decoded = await to_thread.run_sync(decode, limiter=service.decoders)
    uploads.clear()
    results, why = await service.batcher.identify(
        decoded, top=top, together=together, prompt=prompt or None
    )
    listed = sorted({m.model for r in results for m in r.results})
    descriptions = service.hub.registry().descriptions(listed)  # the listed models only
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
