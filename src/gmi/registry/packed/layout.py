"""The packed index's disk layout: which array files a generation holds, how rows are written
and mapped, the committed state in the packed_state table, and what the index needs of the
registry it packs (PackedSource: its database and spec files, never the store class)."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from safetensors import SafetensorError

from gmi.errors import CorruptSpecError
from gmi.registry.files import ModelRecord, SpecFiles
from gmi.safetensors_io import load_with_metadata
from gmi.search.arrays import space_points
from gmi.search.bf16 import Bf16Rows
from gmi.spec.space import FittedSpace
from gmi.spec.specification import Specification

if TYPE_CHECKING:
    from gmi.settings import HubSettings


@dataclass(frozen=True)
class PackedSource:
    """What the packed index reads and writes of a registry home, handed to it by the store
    that owns the home: a read connection, the write transaction (the registry's one write
    lock), a guard that turns a full or read-only disk into StorageError, and the spec files.
    The index never sees the store class, so the store can import it without a loop."""

    home: Path
    read_only: bool
    connect: Callable[[], AbstractContextManager[sqlite3.Connection]]
    write: Callable[[], AbstractContextManager[sqlite3.Connection]]
    guard: Callable[[Callable[[], Any]], Any]
    spec_files: SpecFiles


def spec_or_problem(
    source: PackedSource, name: str, spec_file: str, sha: str
) -> tuple[Specification | None, str | None]:
    """A model's spec as its file holds it, or (None, why it cannot be read)."""
    record = ModelRecord(name, "", spec_file, sha, "", 0, 0, 0.0, 0.0, {})
    try:
        return source.spec_files.load_spec(record), None
    except CorruptSpecError as exc:
        return None, str(exc)


PACKED_DIR = "packed"


LEARNED_DIR = "learned"


SPACE_CHUNK = 65536  # points projected per step when a space is (re)fitted: bounded memory


# name -> (dtype, per-row width key): "d" image dim, "e" prompt dim, None a scalar per row
POINT_FILES = {
    "points": (np.float32, "d"),
    "sq_norms": (np.float32, None),
    "beta": (np.float64, None),
    "point_prompt": (np.int32, None),
    "point_text": (np.int32, None),
}


PAIR_FILES = {
    "pair_features": (np.float32, "d"),
    "pair_prompt": (np.int32, None),
    "pair_text": (np.int32, None),
}


PROMPT_FILE = ("prompts", np.float32, "e")


# a generation with a learned space (gmi.spec.space) also holds its points projected into it,
# and the space itself: the rows and the matrix they were projected with switch together
SPACE_FILE = "space.safetensors"


# a storage type that is not a numpy dtype: bfloat16 bit patterns (gmi.search.bf16), ".bf16"
BF16 = "bf16"


def space_point_files(space: FittedSpace) -> dict:
    """A space's per-point files: its rows r wide ("r"), in the storage the space names (the
    spaces before compact ones: float32, d wide, as they were written)."""
    kind = BF16 if space.storage == "bfloat16" else np.float32
    return {"space_points": (kind, "r"), "space_sq_norms": (np.float32, None)}


def point_files(space: FittedSpace | None) -> dict:
    """The per-point files of a generation: the space's projected rows too when it has one."""
    return {**POINT_FILES, **(space_point_files(space) if space is not None else {})}


def widths(dims: tuple[int, int], space: FittedSpace | None) -> dict:
    """Row widths by key: "d" image dim, "e" prompt dim, "r" the space's dims, None scalar."""
    d, e = dims
    return {"d": d, "e": e, "r": space.dims if space is not None else d, None: None}


def read_space(root: Path) -> FittedSpace | None:
    """The learned space of a generation directory, or None (points as encoded)."""
    path = root / SPACE_FILE
    if not path.exists():
        return None
    try:
        tensors, _ = load_with_metadata(path)
        return FittedSpace.from_tensors(tensors)
    except (OSError, SafetensorError, ValueError, KeyError, TypeError) as exc:
        raise CorruptSpecError(f"{path}: unreadable learned space ({exc})") from exc


def space_rows(space: FittedSpace, points: np.ndarray) -> dict[str, np.ndarray]:
    """The space files' rows of these points as encoded (bfloat16 rows as their bits)."""
    stored, sq_norms = space_points(space, points)
    rows = stored.bits if isinstance(stored, Bf16Rows) else stored
    return {"space_points": rows, "space_sq_norms": sq_norms}


def with_space(mapped: dict, space: FittedSpace | None) -> dict:
    """PackedArrays keyword arguments: points and norms from the space rows when there are."""
    space_points = mapped.pop("space_points", None)
    space_norms = mapped.pop("space_sq_norms", None)
    if space is None:
        return mapped
    return {
        **mapped,
        "points": space_points,
        "sq_norms": space_norms,
        "space": space,
        "gamma": space.gamma,
    }


def numpy_dtype(kind: type | str) -> np.dtype:
    """The numpy type a file's rows are written as (BF16: their uint16 bit patterns)."""
    return np.dtype(np.uint16) if kind == BF16 else np.dtype(kind)


def array_file(root: Path, name: str, dtype: type | str) -> Path:
    if dtype == BF16:
        return root / f"{name}.{BF16}"
    return root / f"{name}.{np.dtype(dtype).str.lstrip('<>|=')}"


def write_rows(path: Path, start: int, rows: np.ndarray, files: dict | None = None) -> None:
    """Write rows at row `start` of a raw array file (after the last committed row). With
    `files` (path -> open handle), handles are reused and synced once by the caller before
    its commit; without, the file is synced here."""
    data = np.ascontiguousarray(rows).astype(rows.dtype.newbyteorder("<"), copy=False)
    row_bytes = data.itemsize * (int(np.prod(data.shape[1:])) if data.ndim > 1 else 1)
    handle = files.get(path) if files is not None else None
    if handle is None:
        handle = open(path, "r+b" if path.exists() else "w+b")  # noqa: SIM115 - kept open
        if files is not None:
            files[path] = handle
    handle.seek(start * row_bytes)
    handle.write(data.tobytes())
    if files is None:
        handle.truncate()
        handle.flush()
        os.fsync(handle.fileno())
        handle.close()


def sync_files(files: dict) -> None:
    """Make every appended row durable before the commit that makes it reachable."""
    for handle in files.values():
        handle.flush()
        os.fsync(handle.fileno())
        handle.close()
    files.clear()


def map_rows(path: Path, dtype: type | str, rows: int, width: int | None):
    """The first `rows` rows of an array file, memory-mapped read-only (BF16: as Bf16Rows)."""
    if dtype == BF16:
        return Bf16Rows(map_rows(path, np.uint16, rows, width))
    shape = (rows,) if width is None else (rows, width)
    if rows == 0:
        return np.zeros(shape, dtype=dtype)
    return np.memmap(path, dtype=np.dtype(dtype).newbyteorder("<"), mode="r", shape=shape)


@dataclass(frozen=True)
class PackedState:
    models_version: int
    packed_version: int
    token: str
    generation: str

    @property
    def in_step(self) -> bool:
        return self.models_version == self.packed_version and bool(self.token)


def read_state(db: sqlite3.Connection) -> PackedState:
    values = dict(db.execute("SELECT key, value FROM packed_state").fetchall())
    return PackedState(
        int(values.get("models_version", "0")),
        int(values.get("packed_version", "-1")),
        values.get("token", ""),
        values.get("generation", "0"),
    )


@dataclass(frozen=True)
class PackedFeatures:
    """What a packed state's rows were made by: the encoder, its kernel width and the widths.
    Stored with the state, so a reader takes the dimensions and the encoder of the rows it
    reads from the same snapshot, never from settings that may have moved on (gmi reencode)."""

    encoder: str
    gamma: float | None
    image_dim: int | None
    prompt_dim: int | None

    @classmethod
    def of(cls, settings: HubSettings) -> PackedFeatures:
        return cls(settings.encoder, settings.gamma, settings.image_dim, settings.prompt_dim)

    def to_text(self) -> str:
        return f"{self.encoder}|{self.gamma!r}|{self.image_dim}|{self.prompt_dim}"

    @classmethod
    def read(cls, db: sqlite3.Connection) -> PackedFeatures | None:
        """The packed state's, or None (packed by a gmi that did not record it)."""
        row = db.execute("SELECT value FROM packed_state WHERE key = 'features'").fetchone()
        if row is None:
            return None
        encoder, gamma, image_dim, prompt_dim = row[0].rsplit("|", 3)

        def number(text: str, kind: type) -> float | int | None:
            return None if text == "None" else kind(text)

        return cls(encoder, number(gamma, float), number(image_dim, int), number(prompt_dim, int))  # type: ignore[arg-type]


def set_state(db: sqlite3.Connection, **values: object) -> None:
    for key, value in values.items():
        db.execute(
            "INSERT OR REPLACE INTO packed_state (key, value) VALUES (?, ?)", (key, str(value))
        )


def registry_gamma(db: sqlite3.Connection) -> float:
    row = db.execute("SELECT value FROM settings WHERE key = 'gamma'").fetchone()
    return float(row[0]) if row else 1.0
