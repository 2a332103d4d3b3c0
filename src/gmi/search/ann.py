"""The embedded approximate searcher (`gmi init --searcher ann`): FAISS over every spec point.

Why FAISS and which index (benchmarks/ann.py, docs/scale.md): below FLAT_MAX_ROWS points an
exact FAISS scan (IndexFlatL2) is already fast; above, an inverted file (IVF, Flat lists:
exact distances inside the probed lists) trained on a sample of the points. HNSW was measured
beside it: it cannot delete, and its build on a 2-core machine is several times slower.

What is indexed: the packed index's point rows as the ranking core reads them (projected when
the hub has a learned space), with FAISS id = packed row. So the index of a packed
*generation* only ever grows: committed rows never change, a removed model's rows stay (its
slot is dead: a tombstone, filtered out at query time), compaction or a new learned space
makes a new generation, and with it a new index. Consequences:

- in a process, the index of (home, generation) is kept and the rows committed since are
  added on the next query (a submit costs the search index O(its own points));
- on disk, `ann/<generation>-<rows>-<trained>.faiss` beside the registry, written atomically,
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gmi.search.arrays import PackedArrays
from gmi.search.shortlist import Shortlist

ANN_DIR = "ann"
FLAT_MAX_ROWS = 65_536  # up to here an exact FAISS scan; above, an inverted file
NPROBE = 32  # inverted lists probed per query at least (benchmarks/ann.py: recall vs latency)
# an inverted file may index the points' first PCA_DIM principal components (0: all of the
# point): 4x smaller at 1056-d and still certifiable (projected distances are lower bounds),
# but the looser radius needs more rounds (benchmarks/ann.py --pca; docs/scale.md)
PCA_DIM = 0
PROBE_FACTOR = 4.0  # probe lists holding about this many times the points asked for
TRAIN_PER_LIST = 32  # k-means training points per inverted list
RETRAIN_GROWTH = 4.0  # retrain the inverted file when the rows grew this much since training
SAVE_GROWTH = 1.25  # rewrite the file when its rows grew by this factor since the last save
ADD_CHUNK = 65_536  # rows added per step (bounded memory when building from memory maps)
VERIFY_ROWS = 8  # rows checked at their own ids when a file is opened


def faiss_module():
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - faiss-cpu is a dependency
        raise RuntimeError("the ann searcher needs FAISS: pip install faiss-cpu") from exc
    return faiss


def lists_for(rows: int) -> int:
    """Inverted lists for `rows` points: a power of two near 4 sqrt(rows) (FAISS's advice)."""
    return int(2 ** round(math.log2(max(4 * math.sqrt(max(rows, 1)), 16))))


def search_parameters(index: object, probes: int) -> object:
    """Per-call probe count (no shared state: concurrent searches may ask for different ones)."""
    faiss = faiss_module()
    ivf = faiss.SearchParametersIVF(nprobe=int(probes))
    if isinstance(index, faiss.IndexPreTransform):
        return faiss.SearchParametersPreTransform(index_params=ivf)
    return ivf


@dataclass
class BuiltIndex:
    """A FAISS index over rows [0, rows) of one packed generation."""

    index: object
    generation: str
    rows: int
    trained_rows: int  # rows when the inverted file was trained; 0 for an exact scan
    saved_rows: int = 0  # rows of the newest file on disk (0: none)

    @property
    def kind(self) -> str:
        if self.trained_rows == 0:
            return "flat"
        ivf = faiss_module().extract_index_ivf(self.index)
        pca = f"pca{ivf.d}," if ivf.d != self.index.d else ""
        return f"{pca}ivf{ivf.nlist},flat"

    def add(self, points: np.ndarray, start: int, end: int) -> None:
        for s in range(start, end, ADD_CHUNK):
            e = min(s + ADD_CHUNK, end)
            self.index.add(np.ascontiguousarray(points[s:e], dtype=np.float32))
        self.rows = end

    def probes(self, n: int) -> int:
        """Inverted lists to probe for n neighbours: NPROBE, or enough lists to hold about
        PROBE_FACTOR * n points (a wider shortlist must look further, not only keep more of
        the same lists)."""
        ivf = faiss_module().extract_index_ivf(self.index)
        wanted = math.ceil(PROBE_FACTOR * n * ivf.nlist / max(self.rows, 1))
        return min(max(NPROBE, wanted), ivf.nlist)

    def search(self, features: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, bool]:
        """(squared distances, ids, exhaustive) of the n nearest indexed points per row;
        exhaustive: every point was looked at and returned (an exact scan with n >= rows)."""
        looked_at_all, params = True, None
        if self.trained_rows:
            probes = self.probes(n)
            looked_at_all = probes >= faiss_module().extract_index_ivf(self.index).nlist
            params = search_parameters(self.index, probes)
        d2, ids = self.index.search(
            np.ascontiguousarray(features, dtype=np.float32), n, params=params
        )
        return d2, ids, looked_at_all and n >= self.rows


def build(points: np.ndarray, generation: str, rows: int | None = None) -> BuiltIndex:
    """A new index over points[:rows] (an exact scan when small, else a trained IVF)."""
    faiss = faiss_module()
    rows = len(points) if rows is None else rows
    d = int(points.shape[1])
    if rows <= FLAT_MAX_ROWS:
        built = BuiltIndex(faiss.IndexFlatL2(d), generation, 0, 0)
    else:
        nlist = lists_for(rows)
        reduce = f"PCA{PCA_DIM}," if 0 < PCA_DIM < d else ""
        index = faiss.index_factory(d, f"{reduce}IVF{nlist},Flat")
        sample = np.random.default_rng(0).choice(rows, min(rows, TRAIN_PER_LIST * nlist), False)
        index.train(np.ascontiguousarray(points[np.sort(sample)], dtype=np.float32))
        built = BuiltIndex(index, generation, 0, rows)
    built.add(points, 0, rows)
    return built


def index_dir(home: str | Path) -> Path:
    return Path(home) / ANN_DIR


def _file_name(built: BuiltIndex) -> str:
    return f"{built.generation}-{built.rows}-{built.trained_rows}.faiss"


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


def _parse(path: Path) -> tuple[str, int, int] | None:
    parts = path.stem.split("-")
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
        return None
    return parts[0], int(parts[1]), int(parts[2])


def stored_files(home: str | Path) -> list[tuple[Path, str, int, int]]:
    """(path, generation, rows, trained rows) of the index files beside a registry."""
    found = []
    for path in index_dir(home).glob("*.faiss") if index_dir(home).is_dir() else []:
        parsed = _parse(path)
        if parsed is not None:
            found.append((path, *parsed))
    return found


VERIFY_NEIGHBOURS = 16


def verify(built: BuiltIndex, points: np.ndarray, rows: np.ndarray) -> list[int]:
    """The rows (of `rows`) NOT found at their own id as their own nearest point (ties at the
    same distance allowed: duplicate images): an index that fails this does not hold these
    points under these ids."""
    rows = rows[rows < min(built.rows, len(points))]
    if rows.size == 0:
        return []
    probe = np.ascontiguousarray(np.asarray(points[rows], dtype=np.float32))
    # a point is in the list of its nearest centroid: one probe finds it
    params = search_parameters(built.index, 1) if built.trained_rows else None
    d2, ids = built.index.search(probe, VERIFY_NEIGHBOURS, params=params)
    tolerance = 1e-5 * (1.0 + np.einsum("nd,nd->n", probe, probe))
    missing = []
    for r, found, dist, tol, point in zip(rows, ids, d2, tolerance, probe, strict=True):
        tied = found[(dist <= dist[0] + tol) & (found >= 0)]
        if r in tied:
            continue
        if tied.size == found.size and _same_points(points, tied, point, tol):
            continue  # more identical points than neighbours asked for (black images)
        missing.append(int(r))
    return missing


def _same_points(points: np.ndarray, ids: np.ndarray, point: np.ndarray, tol: float) -> bool:
    """Whether every id found holds this very point: the index maps those ids to copies of
    it, which is all a search can tell when copies outnumber the neighbours returned."""
    found = np.asarray(points[np.sort(ids)], dtype=np.float32)
    return bool((((found - point) ** 2).sum(axis=1) <= tol).all())


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
    path, _, rows, trained = max(files, key=lambda f: f[2])
    try:
        index = faiss_module().read_index(str(path))
    except RuntimeError as exc:
        return None, f"unreadable ({str(exc).splitlines()[0][:120]})"
    if index.ntotal != rows or index.d != arrays.dim:
        return None, f"holds {index.ntotal} rows of width {index.d}, not {rows} of {arrays.dim}"
    built = BuiltIndex(index, generation, rows, trained, saved_rows=rows)
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
            elif not built.trained_rows and rows > FLAT_MAX_ROWS:
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

    def shortlist(self, arrays: PackedArrays, features: np.ndarray, n: int) -> Shortlist:
        built = self.index_for(arrays)
        n = min(n, max(built.rows, 1))
        d2, ids, exhaustive = built.search(features, n)
        return Shortlist.from_neighbours(arrays, ids, d2, exhaustive=exhaustive)


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
