"""The embedded approximate searcher (`gmi init --searcher ann`): FAISS over every spec point.

Which index and how it is searched (an exact scan up to 65,536 points, above an inverted file
with 8-bit lists whose reconstruction error the shortlist allows for): gmi.search.faiss_index.

What is indexed: the packed index's point rows as the ranking core reads them (projected when
the hub has a learned space), with FAISS id = packed row. So the index of a packed
*generation* only ever grows: committed rows never change, a removed model's rows stay (its
slot is dead: a tombstone, filtered out at query time), compaction or a new learned space
makes a new generation, and with it a new index. Consequences:

- in a process, the index of (home, generation) is kept and the rows committed since are
  added on the next query (a submit costs the search index O(its own points));
- on disk, `ann/<generation>-<rows>-<trained>[-<error>].faiss` beside the registry, written
  atomically (the error of quantised lists in the name, in ERROR_UNIT, rounded up),
  and rewritten only when the rows added since grew by SAVE_GROWTH (amortised O(1) per row);
- an index file of another generation, unreadable, of another width, or whose sampled rows
  are not found at their own ids is STALE: ignored and rebuilt, never used;
- an inverted file is retrained when the hub grew RETRAIN_GROWTH-fold since it was trained.

`gmi index rebuild` rebuilds and saves it; `gmi check` verifies it (check_index).
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from gmi.search import faiss_index
from gmi.search.arrays import PackedArrays
from gmi.search.faiss_index import BuiltIndex, build, faiss_module, verify
from gmi.search.shortlist import Shortlist
from gmi.search.summaries import ModelSummaries

ANN_DIR = "ann"
RETRAIN_GROWTH = 4.0  # retrain the inverted file when the rows grew this much since training
SAVE_GROWTH = 1.25  # rewrite the file when its rows grew by this factor since the last save
VERIFY_ROWS = 8  # rows checked at their own ids when a file is opened
ERROR_UNIT = 1e-9  # a file name keeps the index's reconstruction error in these units


def index_dir(home: str | Path) -> Path:
    return Path(home) / ANN_DIR


def _file_name(built: BuiltIndex) -> str:
    """generation-rows-trained[-error].faiss: the error (rounded up) travels in the name, so
    it is written in the same rename as the index it belongs to."""
    name = f"{built.generation}-{built.rows}-{built.trained_rows}"
    if built.error > 0:
        name += f"-{math.ceil(built.error / ERROR_UNIT)}"
    return f"{name}.faiss"


def save(home: str | Path, built: BuiltIndex) -> Path:
    """Write the index atomically (temporary file + rename) and drop older files."""
    faiss = faiss_module()
    folder = index_dir(home)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / _file_name(built)
    temporary = folder / f".{path.name}.{os.getpid()}.tmp"
    faiss.write_index(built.index, str(temporary))
    os.replace(temporary, path)
    built.saved_rows = built.rows
    for other in folder.glob("*.faiss"):
        if other != path:
            with contextlib.suppress(OSError):
                other.unlink()
    return path


def _parse(path: Path) -> tuple[str, int, int, float] | None:
    parts = path.stem.split("-")
    if len(parts) not in (3, 4) or not all(p.isdigit() for p in parts[1:]):
        return None  # (3 parts: written before quantised lists, whose error is 0)
    error = int(parts[3]) * ERROR_UNIT if len(parts) == 4 else 0.0
    return parts[0], int(parts[1]), int(parts[2]), error


def stored_files(home: str | Path) -> list[tuple[Path, str, int, int, float]]:
    """(path, generation, rows, trained rows, error) of the index files beside a registry."""
    found = []
    for path in index_dir(home).glob("*.faiss") if index_dir(home).is_dir() else []:
        parsed = _parse(path)
        if parsed is not None:
            found.append((path, *parsed))
    return found


STALE = "of another generation (stale)"


def leftovers(home: str | Path, generation: str) -> list[Path]:
    """Index files no process will read: other generations' indexes and temporary files of
    an interrupted save (a killed `gmi index rebuild`). `gmi check` lists them, --repair
    deletes them."""
    folder = index_dir(home)
    if not folder.is_dir():
        return []
    stale = [f[0] for f in stored_files(home) if f[1] != generation]
    return sorted(stale + list(folder.glob(".*.tmp")))


def load(home: str | Path, arrays: PackedArrays) -> tuple[BuiltIndex | None, str]:
    """The stored index of this generation, or None and why it cannot be used."""
    generation = arrays.origin[1] if arrays.origin else ""
    files = [f for f in stored_files(home) if f[1] == generation]
    if not files:
        others = stored_files(home)
        return None, (STALE if others else "missing")
    path, _, rows, trained, error = max(files, key=lambda f: f[2])
    try:
        index = faiss_module().read_index(str(path))
    except RuntimeError as exc:
        return None, f"unreadable ({str(exc).splitlines()[0][:120]})"
    if index.ntotal != rows or index.d != arrays.dim:
        return None, f"holds {index.ntotal} rows of width {index.d}, not {rows} of {arrays.dim}"
    built = BuiltIndex(index, generation, rows, trained, saved_rows=rows, error=error)
    sample = np.unique(np.r_[0, rows - 1, np.linspace(0, rows - 1, VERIFY_ROWS - 2).astype(int)])
    missing = verify(built, arrays.points, sample[sample >= 0])
    if missing:
        return None, f"rows {missing[:4]} are not at their own ids (stale or damaged)"
    return built, "ok"


class AnnSearcher:
    """Shortlists from a FAISS index kept per (registry home, generation) in this process."""

    name = "ann"
    indexed = True

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[str, BuiltIndex] = {}  # registry home -> its current generation's index
        self.events: list[str] = []  # what happened to indexes (loaded, built, stale): for tests

    def index_for(self, arrays: PackedArrays) -> BuiltIndex:
        """The index covering every committed row of these arrays (loaded, extended or built)."""
        rows = len(arrays.points)
        if arrays.origin is None:  # in memory (benchmark, tests): kept on the arrays object
            built = arrays.device_copies.get("ann")
            if built is None:
                built = arrays.device_copies["ann"] = build(arrays.points, "", rows)
            return built
        home, generation = arrays.origin
        with self._lock:
            built = self._open.get(home)
            if built is not None and built.generation != generation:
                built = None
            if built is None:
                built, why = load(home, arrays)
                if built is None:
                    self.events.append(f"rebuilt: index {why}")
                    built = build(arrays.points, generation, rows)
                    self._save(home, built)
                else:
                    self.events.append("loaded")
                self._open[home] = built
            if built.trained_rows and rows > RETRAIN_GROWTH * built.trained_rows:
                self.events.append("retrained: the hub outgrew the inverted file")
                built = self._open[home] = build(arrays.points, generation, rows)
                self._save(home, built)
            elif not built.trained_rows and rows > faiss_index.FLAT_MAX_ROWS:
                self.events.append("retrained: the hub outgrew an exact scan")
                built = self._open[home] = build(arrays.points, generation, rows)
                self._save(home, built)
            if built.rows < rows:
                built.add(arrays.points, built.rows, rows)
                if built.rows >= SAVE_GROWTH * max(built.saved_rows, 1):
                    self._save(home, built)
            return built

    def _save(self, home: str, built: BuiltIndex) -> None:
        try:
            save(home, built)
        except (OSError, RuntimeError) as exc:  # read-only home: the index stays in memory
            self.events.append(f"not saved: {exc}")

    def rebuild(self, arrays: PackedArrays) -> BuiltIndex:
        """A fresh index of these arrays, saved beside the registry (`gmi index rebuild`)."""
        if arrays.origin is None:
            raise ValueError("only a registry's index can be rebuilt on disk")
        home, generation = arrays.origin
        built = build(arrays.points, generation)
        save(home, built)
        with self._lock:
            self._open[home] = built
        return built

    def sync(self, arrays: PackedArrays) -> int:
        return self.index_for(arrays).rows

    def status(self, arrays: PackedArrays) -> dict[str, Any]:
        built = self.index_for(arrays)
        home = arrays.origin[0] if arrays.origin is not None else None
        return {
            "index": built.kind,
            "indexed_rows": built.rows,
            "saved_rows": built.saved_rows,
            "files": [str(f[0]) for f in stored_files(home)] if home is not None else [],
            "problems": check_index(arrays),
        }

    def check(self, arrays: PackedArrays) -> list[str]:
        return check_index(arrays)

    def leftovers(self, home: str | Path, generation: str) -> list[Path]:
        return leftovers(home, generation)

    def shortlist(
        self, arrays: PackedArrays, features: np.ndarray, n: int, estimate: bool = False
    ) -> Shortlist:
        built = self.index_for(arrays)
        n = min(n, max(built.rows, 1))
        d2, ids, exhaustive = built.search(features, n)
        radius2 = None
        if built.error > 0:  # quantised lists: the index measured reconstructions, each within
            # `error` of its point: a point it did not return lies beyond sqrt(d_N) - error, one
            # it did at least sqrt(d) - error away (lower bounds, as the certificate needs;
            # re-measuring them from the points would read 16,384 scattered rows: at 10^6
            # models, 230 ms of page faults, benchmarks/ann.py)
            farthest = np.sqrt(np.where(ids >= 0, d2, 0.0).max(axis=1).astype(np.float64))
            radius2 = np.maximum(farthest - built.error, 0.0) ** 2
            d2 = np.maximum(np.sqrt(np.maximum(d2, 0.0).astype(np.float64)) - built.error, 0.0) ** 2
        found = Shortlist.from_neighbours(arrays, ids, d2, exhaustive=exhaustive, radius2=radius2)
        if estimate:
            with self._lock:
                if built.summaries is None:
                    built.summaries = ModelSummaries(arrays.dim)
                built.summaries.extend(arrays)
            found = found.with_expected(built.summaries.expected2(features, found.slots))
        return found


def check_index(arrays: PackedArrays, sample: int = 64) -> list[str]:
    """What is wrong with a registry's stored index (`gmi check`): missing is not a fault
    (the next query builds it), stale or damaged is."""
    if arrays.origin is None or len(arrays.points) == 0:
        return []
    home, _ = arrays.origin
    built, why = load(home, arrays)
    if built is None:  # none for this generation yet (a write started one): the next query
        # builds it, and another generation's file is a leftover (gmi check lists it)
        return [] if why in ("missing", STALE) else [f"ann index: {why}"]
    rows = np.random.default_rng(0).choice(built.rows, min(sample, built.rows), replace=False)
    missing = verify(built, arrays.points, np.sort(rows))
    if missing:
        return [f"ann index: {len(missing)} of {len(rows)} sampled rows not at their own ids"]
    return []


ANN = AnnSearcher()
