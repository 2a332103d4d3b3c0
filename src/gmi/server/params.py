"""Request parameters shared by the routes: model names in paths, bounded upload reads."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path as PathParam
from fastapi import UploadFile
from starlette.convertors import Convertor, register_url_convertor

from gmi.errors import PayloadTooLargeError
from gmi.registry.validation import MAX_NAME, NAME_REGEX

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


async def read_limited(upload: UploadFile, limit: int, label: str) -> bytes:
    """Read an upload in chunks, refusing it as soon as it passes the limit."""
    chunks, size = [], 0
    while chunk := await upload.read(1024 * 1024):
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"{label}: larger than {limit // 2**20} MiB")
        chunks.append(chunk)
    return b"".join(chunks)
