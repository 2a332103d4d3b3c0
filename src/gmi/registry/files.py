"""What every store keeps in a registry home, whatever holds its catalogue: the record of a
model (ModelRecord) and its files (SpecFiles: the spec file and the example thumbnails,
written whole or not at all). SQLite (gmi.registry.store) and PostgreSQL
(gmi.registry.postgres) stores both build on it.

    specs/<id>.safetensors   one spec per model (arrays + JSON header), named by a random id
    thumbs/<id>/NNNN.jpg     its example thumbnails, one folder renamed into place
    images/<id>/             its kept spec images, an imagefolder (gmi.submit.kept): what
                             `gmi reencode` reads; linked, not copied, when the spec is rebuilt
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gmi.errors import CorruptSpecError, NotFoundError, StorageError
from gmi.registry.atomic import atomic_write, dir_mode, fsync_dir
from gmi.registry.writes import ModelWrite, NewFiles, RowDialect, Swap, check_and_set, upsert_row
from gmi.spec.specification import Specification

THUMB_DIR = "thumbs"
SPEC_DIR = "specs"
KEPT_DIR = "images"
FOLDERS = (THUMB_DIR, KEPT_DIR)  # per-spec folders named by the spec file's id


@dataclass(frozen=True)
class ModelRecord:
    name: str
    description: str
    spec_file: str
    spec_sha256: str
    encoder: str
    n_images: int
    n_points: int
    created: float
    updated: float
    extra: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "encoder": self.encoder,
            "n_images": self.n_images,
            "n_points": self.n_points,
            "created": self.created,
            "updated": self.updated,
            "spec_sha256": self.spec_sha256,
            **({"extra": self.extra} if self.extra else {}),
        }


class SpecFiles:
    """The files of a registry home, whatever keeps its catalogue (SQLite here, PostgreSQL in
    gmi.registry.postgres): spec files and example thumbnails, written whole or not at all."""

    home: Path
    spec_dir: Path

    def _storage(self, action: Callable[[], Any]) -> Any:
        """Run a filesystem write; a full or read-only disk is one clear error."""
        try:
            return action()
        except OSError as exc:
            raise StorageError(
                f"{self.home}: cannot write the registry ({exc.strerror or exc}); "
                "nothing was changed"
            ) from exc

    def _write_files(self, spec_file: str, data: bytes, write: ModelWrite) -> None:
        """A new spec file, its thumbnails and kept images (before the catalogue row that
        points at them)."""
        try:
            self._storage(lambda: atomic_write(self.spec_dir / spec_file, data))
            if write.thumbnails:
                thumbs = [(f"{i:04d}.jpg", t) for i, t in enumerate(write.thumbnails)]
                self._storage(lambda: self._write_folder(THUMB_DIR, spec_file, thumbs))
            if write.kept:
                kept = write.kept
                self._storage(lambda: self._write_folder(KEPT_DIR, spec_file, kept))
            if write.linked_from:
                old = write.linked_from
                self._storage(lambda: self.copy_folders(old, spec_file))
        except StorageError:
            self._delete_files(spec_file)
            raise

    def write_model(
        self,
        write: ModelWrite,
        transaction: Callable[[], AbstractContextManager[Any]],
        rows: RowDialect,
    ) -> None:
        """The write template for one model (write_models of one)."""
        self.write_models([write], transaction, rows)

    def write_models(
        self,
        writes: Sequence[ModelWrite],
        transaction: Callable[[], AbstractContextManager[Any]],
        rows: RowDialect,
        swap: Swap | None = None,
    ) -> None:
        """The write template (gmi.registry.writes): every model's files first (atomic),
        then all their rows in ONE `transaction` (a context giving something with .execute):
        a batch is committed whole or not at all. A failure before the commit deletes the
        new files; replaced models' files go after it. One model per transaction is what a
        submit does; a bulk import (a catalogue, a benchmark hub) passes many; a re-encode
        passes every model and a `swap` (checked and applied in the same transaction)."""
        new: list[NewFiles] = []
        try:
            for write in writes:
                data = write.spec.to_bytes()
                made = NewFiles(
                    f"{uuid.uuid4().hex}.safetensors", hashlib.sha256(data).hexdigest(), time.time()
                )
                self._write_files(made.spec_file, data, write)
                new.append(made)
            with transaction() as db:
                if swap is not None:
                    check_and_set(db.execute, rows, swap)
                old_files = [
                    upsert_row(db.execute, rows, write, made)
                    for write, made in zip(writes, new, strict=True)
                ]
        except BaseException:
            for made in new:
                self._delete_files(made.spec_file)
            raise
        for old_file in old_files:
            if old_file:
                self._delete_files(old_file)
        if any(old_files):
            fsync_dir(self.spec_dir)

    # -- per-spec folders: example thumbnails, kept images --------------------------------
    def thumbnail_dir(self, spec_file: str) -> Path:
        return self.home / THUMB_DIR / Path(spec_file).stem

    def kept_dir(self, spec_file: str) -> Path:
        """Where a spec's kept images are (an imagefolder; absent when none were kept)."""
        return self.home / KEPT_DIR / Path(spec_file).stem

    def _write_folder(
        self, kind: str, spec_file: str, files: list[tuple[str, bytes]] | Path
    ) -> None:
        """A spec's folder of `kind` (thumbs, images) written into a temp folder, then one
        rename: present whole or not at all. `files` as (name, bytes), or an existing folder
        whose files are hard-linked (copied where links cannot be made): a rebuilt spec keeps
        its images without a second copy on disk."""
        root = self.home / kind
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=".tmp-"))
        try:
            tmp.chmod(dir_mode())  # mkdtemp's 0700 would hide the images from other accounts
            if isinstance(files, Path):
                for path in sorted(files.iterdir()):
                    try:
                        os.link(path, tmp / path.name)
                    except OSError:
                        shutil.copy2(path, tmp / path.name)
            else:
                for name, data in files:
                    (tmp / name).write_bytes(data)
            os.replace(tmp, root / Path(spec_file).stem)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        fsync_dir(root)

    def copy_folders(self, old_spec_file: str, new_spec_file: str) -> None:
        """A rebuilt spec's thumbnails and kept images: the old spec's, linked."""
        for kind in FOLDERS:
            old = self.home / kind / Path(old_spec_file).stem
            if old.is_dir():
                self._write_folder(kind, new_spec_file, old)

    def thumbnail(self, record: ModelRecord, index: int) -> Path:
        """The path of example image `index` of a model; NotFoundError when there is none.
        Built only from the stored record and an integer: no client text reaches the path."""
        if not 0 <= index < record.n_images:
            raise NotFoundError(f"model {record.name!r} has no example image {index}")
        path = self.thumbnail_dir(record.spec_file) / f"{int(index):04d}.jpg"
        if not path.is_file():
            raise NotFoundError(f"model {record.name!r} has no stored example image {index}")
        return path

    def load_spec(self, record: ModelRecord) -> Specification:
        path = self.spec_dir / record.spec_file
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CorruptSpecError(f"model {record.name!r}: spec file missing ({exc})") from exc
        if hashlib.sha256(data).hexdigest() != record.spec_sha256:
            raise CorruptSpecError(f"model {record.name!r}: spec file does not match its checksum")
        return Specification.load(path, label=f"model {record.name!r}")

    def _delete_files(self, spec_file: str) -> None:
        (self.spec_dir / spec_file).unlink(missing_ok=True)
        for kind in FOLDERS:
            shutil.rmtree(self.home / kind / Path(spec_file).stem, ignore_errors=True)
