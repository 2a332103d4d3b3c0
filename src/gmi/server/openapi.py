"""Make the generated OpenAPI schema say what the server does.

FastAPI generates most of it from the routes and gmi.server.schemas. What it cannot know is
patched here, once, when the schema is first requested:

- error bodies: every 4xx is `{"error": "..."}` (ErrorOut), including FastAPI's own 422 for a
  request that breaks the schema (its default says `HTTPValidationError{detail}`);
- multipart parts: the media types an image or archive part must have (`encoding`), so
  clients and API testers send images where images are expected, and at least one byte;
- the admin bearer token (a security scheme) on the write operations.

schemathesis tests the result against a live server (tests/test_openapi_schemathesis.py).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from gmi.server.schemas import ErrorOut

IMAGE_TYPES = "image/png, image/jpeg, image/webp, image/gif, image/bmp, image/tiff"
ERROR_DESCRIPTIONS = {
    400: "bad input: not an image, a malformed imagefolder, an invalid name, ...",
    401: "missing or wrong admin token (Authorization: Bearer <token>)",
    403: "writes are disabled: the server has no admin token",
    404: "no such model, image or registry",
    408: "the request body stalled",
    409: "a model of that name exists (send replace=true to overwrite it)",
    413: "an upload is larger than the limit",
    415: "the body is not multipart/form-data",
    422: "the request does not match this schema",
    503: "the hub has no usable model or its registry cannot be read",
    507: "the registry cannot be written (full or read-only disk); nothing was changed",
}
# multipart part name -> media types, per operation id
# multipart fields that are required although the route gives them a default (so that the
# handler, not FastAPI, answers a missing value with a 400 and a message)
REQUIRED_FIELDS = {"name"}
PART_TYPES = {
    "images": IMAGE_TYPES,
    "files": IMAGE_TYPES,
    "archive": "application/zip",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries for the error statuses an operation can answer."""
    return {code: {"model": ErrorOut, "description": ERROR_DESCRIPTIONS[code]} for code in codes}


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = patch_schema(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def patch_schema(schema: dict[str, Any]) -> dict[str, Any]:
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.setdefault("ErrorOut", ErrorOut.model_json_schema())
    error_ref = {"$ref": "#/components/schemas/ErrorOut"}
    for methods in schema.get("paths", {}).values():
        for operation in methods.values():
            responses = operation.get("responses", {})
            if "422" in responses:
                responses["422"] = {
                    "description": ERROR_DESCRIPTIONS[422],
                    "content": {"application/json": {"schema": error_ref}},
                }
            form = operation.get("requestBody", {}).get("content", {}).get("multipart/form-data")
            if form is not None:
                body = _resolve(schema, form.get("schema", {}))
                _no_nulls_in_forms(body)
                for field in REQUIRED_FIELDS & set(body.get("properties", {})):
                    body["properties"][field].pop("default", None)
                    body["required"] = sorted({*body.get("required", []), field})
                if {"files", "metadata"} <= set(body.get("properties", {})):
                    # loose files come with their metadata (and an upload without either
                    # an archive or files is a 400: the operation's description says so)
                    body["dependentRequired"] = {"files": ["metadata"], "metadata": ["files"]}
                _no_empty_parts(body)
                encoding = {
                    part: {"contentType": types}
                    for part, types in PART_TYPES.items()
                    if part in body.get("properties", {})
                }
                if encoding:
                    form["encoding"] = encoding
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    components.setdefault("securitySchemes", {})["bearer"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "the server's GMI_ADMIN_TOKEN",
    }
    return schema


def _no_empty_parts(body: dict[str, Any]) -> None:
    """An empty image or archive part is refused (400: not an image): the schema says a
    binary part holds at least one byte, so schema-valid uploads are ones the server reads."""
    for part in PART_TYPES:
        prop = body.get("properties", {}).get(part)
        if prop is None:
            continue
        target = prop.get("items", prop)
        if target.get("format") == "binary" or "contentMediaType" in target:
            target["minLength"] = 1


def _no_nulls_in_forms(body: dict[str, Any]) -> None:
    """A multipart field cannot be null: it is sent or omitted. FastAPI writes optional fields
    as anyOf [type, null]; say what the wire carries (the type; omit it for "none")."""
    for name, prop in body.get("properties", {}).items():
        branches = prop.get("anyOf")
        if not branches:
            continue
        kept = [b for b in branches if b.get("type") != "null"]
        if len(kept) == 1 and len(kept) < len(branches):
            merged = {k: v for k, v in prop.items() if k not in ("anyOf", "default")}
            body["properties"][name] = {**kept[0], **merged}


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if not ref:
        return node
    target: Any = schema
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    return target
