"""What every store checks before a write, in one place: model names, user text, the
description's length, and checkpoint identities in the forms they are stored."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from gmi.errors import InvalidInputError
from gmi.model_hash import parse_model_id, stored_keys

if TYPE_CHECKING:
    from gmi.registry.base import Store

# A model name; matched whole (fullmatch: "$" would also match before a trailing newline)
ANY_NAME_REGEX = r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?"
# "owner/similar" is reserved: GET /api/models/{name}/similar would be ambiguous with it
RESERVED_NAME = "similar"
NAME_REGEX = rf"(?![A-Za-z0-9._-]+/{RESERVED_NAME}$){ANY_NAME_REGEX}"
NAME_PATTERN = re.compile(NAME_REGEX)
MAX_NAME = 128
MAX_DESCRIPTION = 4000


def validate_name(name: str) -> str:
    if not isinstance(name, str) or not name:
        raise InvalidInputError("model name must not be empty")
    if len(name) > MAX_NAME:
        raise InvalidInputError(f"model name longer than {MAX_NAME} characters")
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidInputError(
            f"invalid model name {name!r}: use letters, digits, '.', '_', '-' "
            f"(optionally 'owner/name', where the name is not {RESERVED_NAME!r}), starting with a "
            "letter or digit"
        )
    return name


def validate_text(value: str, what: str) -> str:
    """User text that every store and tool can hold: UTF-8 (a non-UTF-8 command-line
    argument arrives as lone surrogates) and no NUL (PostgreSQL refuses it in TEXT)."""
    if "\x00" in value:
        raise InvalidInputError(f"{what} must not contain a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputError(f"{what} is not valid UTF-8 text") from None
    return value


def validate_description(description: str | None) -> str | None:
    if description is None:
        return None
    if len(description) > MAX_DESCRIPTION:
        raise InvalidInputError(f"description longer than {MAX_DESCRIPTION} characters")
    return validate_text(description, "the description")


def checked_submission(
    name: str, description: str | None, model_hashes: list[str] | None
) -> list[str] | None:
    """What every store checks before a write: the name, the description's length, and the
    checkpoint hashes in the forms they are stored (None: keep the model's current ones)."""
    validate_name(name)
    validate_description(description)
    if model_hashes is None:
        return None
    return stored_keys(list(model_hashes))


def models_with_identity(store: Store, value: str) -> list[str]:
    """Registered models carrying one checkpoint identity (any kind gmi.model_hash accepts; a
    full sha256 also matches its AutoV2 form), for every store."""
    keys = parse_model_id(value).registry_keys()
    return sorted({n for names in store.models_with_keys(keys).values() for n in names})


MAX_LOOKUP_KEYS = 500  # an image names a few dozen checkpoints and LoRAs at most


def normalise_model_hash(value: str) -> str:
    """A checkpoint identity as stored (gmi.model_hash), or InvalidInputError saying what is
    accepted: AutoV1/V2/V3, sha256, blake3, a Civitai AIR or a file name."""
    return parse_model_id(value).registry_keys()[0]


__all__ = [
    "ANY_NAME_REGEX",
    "MAX_DESCRIPTION",
    "MAX_LOOKUP_KEYS",
    "MAX_NAME",
    "NAME_PATTERN",
    "NAME_REGEX",
    "checked_submission",
    "models_with_identity",
    "normalise_model_hash",
    "validate_description",
    "validate_name",
    "validate_text",
]
