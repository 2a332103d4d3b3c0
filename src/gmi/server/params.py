"""Request parameters shared by the routes: model names in paths, bounded upload reads."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path as PathParam
from fastapi import UploadFile
from starlette.convertors import Convertor, register_url_convertor

from gmi.errors import PayloadTooLargeError
from gmi.registry.validation import ANY_NAME_REGEX, MAX_NAME, NAME_REGEX

# the OpenAPI / pydantic pattern: pydantic's regex engine has no look-ahead, so it cannot
# say that "owner/similar" is reserved; the route convertor and validate_name refuse it
NAME_SCHEMA_PATTERN = f"^{ANY_NAME_REGEX}$"


class ModelNameConvertor(Convertor):
    """`{name:model}` in a route: exactly a valid model name (one optional "owner/"), so a
    route for /api/models/{name} never swallows /api/models/{name}/images/{index}."""

    regex = NAME_REGEX.replace("(/", "(?:/")

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


class AnyModelNameConvertor(ModelNameConvertor):
    """`{name:model_any}`: a model name in a route that ends in a reserved word
    (/api/models/{name}/similar), where "owner/similar" is not a name."""

    regex = ANY_NAME_REGEX.replace("(", "(?:")


register_url_convertor("model", ModelNameConvertor())
register_url_convertor("model_any", AnyModelNameConvertor())
ModelName = Annotated[
    str,
    PathParam(
        min_length=1, max_length=MAX_NAME, pattern=NAME_SCHEMA_PATTERN, description="model name"
    ),
]


async def read_limited(upload: UploadFile, limit: int, label: str) -> bytes:
    """Read an upload in chunks, refusing it as soon as it passes the limit."""
    chunks, size = [], 0
    while chunk := await upload.read(1024 * 1024):
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"{label}: larger than {limit // 2**20} MiB")
        chunks.append(chunk)
    return b"".join(chunks)
