"""Checking what strangers upload, before anything is decoded or written.

Sizes are capped while reading (a request cannot make the server hold more than the limit),
images go through gmi.images (pixel-count limit before decoding), and a zip upload is unpacked
only after every member name and size has been checked (no absolute paths, no '..', no links,
bounded total size: zip bombs and path traversal are refused).
"""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path, PurePosixPath

from gmi.errors import InvalidInputError

MAX_IMAGE_BYTES = 10 * 1024 * 1024
MAX_QUERY_IMAGES = 8
MAX_ARCHIVE_BYTES = 200 * 1024 * 1024
MAX_ARCHIVE_MEMBERS = 5000
# What the form parser (Starlette's defaults) takes in one request, and the schema says so:
# at most 1,000 file parts, and 1 MiB per text part (256 Ki characters fit in any UTF-8).
MAX_FORM_FILES = 1000
MAX_METADATA_CHARS = 256 * 1024
MAX_UNPACKED_BYTES = 1024 * 1024 * 1024


def safe_extract(archive: Path, target: Path) -> Path:
    """Unpack an imagefolder zip into target (returned); the CLI's reader reads it."""
    try:
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            if len(members) > MAX_ARCHIVE_MEMBERS:
                raise InvalidInputError(f"archive has more than {MAX_ARCHIVE_MEMBERS} files")
            if sum(m.file_size for m in members) > MAX_UNPACKED_BYTES:
                raise InvalidInputError("archive unpacks to more than 1 GiB")
            for m in members:
                name = PurePosixPath(m.filename)
                mode = m.external_attr >> 16
                if name.is_absolute() or ".." in name.parts or "\x00" in m.filename:
                    raise InvalidInputError(f"archive member {m.filename!r} points outside")
                if stat.S_ISLNK(mode):
                    raise InvalidInputError(f"archive member {m.filename!r} is a link")
            zf.extractall(target)
    except zipfile.BadZipFile as exc:
        raise InvalidInputError("archive is not a valid zip file") from exc
    return target  # gmi.imagefolder finds the split and the metadata, as for the CLI
