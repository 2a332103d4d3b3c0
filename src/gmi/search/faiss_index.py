"""The FAISS index over a packed generation's point rows, in memory: which index, how it is
built and extended, searched and checked. Files and the searcher are gmi.search.ann's job.

Which index (benchmarks/ann.py, docs/scale.md): up to FLAT_MAX_ROWS points an exact scan
(IndexFlatL2); above, an inverted file (IVF) whose lists hold each point's residual to its
list's centroid scalar-quantised to 8 bits per dimension (LIST_CODEC "SQ8"): a quarter of the
float32 copy IVF-Flat kept (13 GB at 10^5 models x 48 points x 544 dims, more than the points),
so that 10^6 models fit beside their memory-mapped bfloat16 points on one 24 GB machine.
HNSW was measured beside it: it cannot delete, and its build on 2 cores is several times
slower.

A quantised list measures each query to a point's RECONSTRUCTION, not to the point. So the
index keeps `error`, the largest distance ||x - reconstruction(x)|| over the points it holds
(measured as they are added, with the codec FAISS encodes them with), and the searcher
takes sqrt(d) - error as each returned point's distance and vouches only for radius
sqrt(d_N) - error around each image: lower bounds both, so the certificate (METHOD.md
section 9) stays a proof up to the inverted file's recall, as it was with exact lists; the
models answered are scored exactly from their own packed rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

FLAT_MAX_ROWS = 65_536  # up to here an exact FAISS scan; above, an inverted file
NPROBE = 32  # inverted lists probed per query at least (benchmarks/ann.py: recall vs latency)
# the inverted lists' encoding: "SQ8" (8-bit residuals, 1 byte per dimension), "Flat" (float32
# copies, exact distances), or a FAISS PQ code such as "PQ32" (benchmarks/ann.py --codec)
LIST_CODEC = "SQ8"
# an inverted file may index the points' first PCA_DIM principal components (0: all of the
# point): still certifiable (projected distances are lower bounds), but the looser radius
# needs more rounds (benchmarks/ann.py --pca; docs/scale.md)
PCA_DIM = 0
PROBE_FACTOR = 4.0  # probe lists holding about this many times the points asked for
TRAIN_PER_LIST = 32  # k-means training points per inverted list
# the most inverted lists: assigning 48 M points (10^6 models) to 2^12 centroids takes ~6 min
# on 2 cores, and the assignment grows with the lists (benchmarks/ann.py, docs/scale.md)
MAX_LISTS = 4096
ADD_CHUNK = 65_536  # rows added per step (bounded memory when building from memory maps)
ERROR_MARGIN = 1.0 + 1e-4  # on the measured reconstruction error: float32 residual rounding
VERIFY_NEIGHBOURS = 16


def faiss_module():
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - faiss-cpu is a dependency
        raise RuntimeError("the ann searcher needs FAISS: pip install faiss-cpu") from exc
    return faiss


def lists_for(rows: int) -> int:
    """Inverted lists for `rows` points: a power of two near 4 sqrt(rows) (FAISS's advice),
    at most MAX_LISTS."""
    wanted = int(2 ** round(math.log2(max(4 * math.sqrt(max(rows, 1)), 16))))
    return min(wanted, MAX_LISTS)


def search_parameters(index: object, probes: int) -> object:
    """Per-call probe count (no shared state: concurrent searches may ask for different ones)."""
    faiss = faiss_module()
    ivf = faiss.SearchParametersIVF(nprobe=int(probes))
    if isinstance(index, faiss.IndexPreTransform):
        return faiss.SearchParametersPreTransform(index_params=ivf)
    return ivf


def list_codec(index: object):
    """The codec of an inverted file's lists (ScalarQuantizer / ProductQuantizer), or None for
    exact lists (Flat) and an exact scan."""
    faiss = faiss_module()
    if not isinstance(index, (faiss.IndexIVF, faiss.IndexPreTransform)):
        return None
    ivf = faiss.downcast_index(faiss.extract_index_ivf(index))
    codec = getattr(ivf, "sq", None)
    return codec if codec is not None else getattr(ivf, "pq", None)


@dataclass
class BuiltIndex:
    """A FAISS index over rows [0, rows) of one packed generation."""

    index: object
    generation: str
    rows: int
    trained_rows: int  # rows when the inverted file was trained; 0 for an exact scan
    saved_rows: int = 0  # rows of the newest file on disk (0: none)
    error: float = 0.0  # the largest ||x - reconstruction(x)|| of the points held (0: exact)
    summaries: Any = None  # gmi.search.summaries.ModelSummaries, made when first asked for

    @property
    def kind(self) -> str:
        if self.trained_rows == 0:
            return "flat"
        ivf = faiss_module().extract_index_ivf(self.index)
        pca = f"pca{ivf.d}," if ivf.d != self.index.d else ""
        codec = list_codec(self.index)
        if codec is None:
            lists = "flat"
        elif hasattr(codec, "qtype"):
            lists = f"sq{codec.code_size * 8 // ivf.d}"
        else:
            lists = f"pq{codec.M}"
        return f"{pca}ivf{ivf.nlist},{lists}"

    def add(self, points: np.ndarray, start: int, end: int) -> None:
        for s in range(start, end, ADD_CHUNK):
            chunk = np.ascontiguousarray(points[s : min(s + ADD_CHUNK, end)], dtype=np.float32)
            if list_codec(self.index) is None:
                self.index.add(chunk)
            else:
                self.error = max(self.error, _add_quantised(self.index, chunk))
        self.rows = end

    def probes(self, n: int) -> int:
        """Inverted lists to probe for n neighbours: NPROBE, or enough lists to hold about
        PROBE_FACTOR * n points (a wider shortlist must look further, not only keep more of
        the same lists)."""
        ivf = faiss_module().extract_index_ivf(self.index)
        wanted = math.ceil(PROBE_FACTOR * n * ivf.nlist / max(self.rows, 1))
        return min(max(NPROBE, wanted), ivf.nlist)

    def search(self, features: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, bool]:
        """(squared distances as the index measures them, ids, exhaustive) of the n nearest
        indexed points per row; exhaustive: every point was looked at and returned (an exact
        scan with n >= rows)."""
        looked_at_all, params = True, None
        if self.trained_rows:
            probes = self.probes(n)
            looked_at_all = probes >= faiss_module().extract_index_ivf(self.index).nlist
            params = search_parameters(self.index, probes)
        d2, ids = self.index.search(
            np.ascontiguousarray(features, dtype=np.float32), n, params=params
        )
        return d2, ids, looked_at_all and n >= self.rows


def _add_quantised(index: object, chunk: np.ndarray) -> float:
    """Add a chunk to a quantised inverted file; returns the chunk's largest reconstruction
    error. The chunk is assigned to its lists once, its residuals encoded and decoded with
    the index's own codec (the codes FAISS stores), then added with that assignment."""
    faiss = faiss_module()
    ivf = faiss.extract_index_ivf(index)
    values = chunk
    if isinstance(index, faiss.IndexPreTransform):  # the PCA first: the lists hold its output
        for step in range(index.chain.size()):
            values = np.ascontiguousarray(index.chain.at(step).apply(values))
    _, lists = ivf.quantizer.search(values, 1)
    lists = np.ascontiguousarray(lists.ravel(), dtype=np.int64)
    residual = values - ivf.quantizer.reconstruct_n(0, ivf.nlist)[lists]
    codec = list_codec(index)
    decoded = codec.decode(codec.compute_codes(np.ascontiguousarray(residual)))
    error = float(np.sqrt(((decoded - residual) ** 2).sum(axis=1)).max(initial=0.0))
    ids = np.arange(ivf.ntotal, ivf.ntotal + len(values), dtype=np.int64)
    ivf.add_core(len(values), faiss.swig_ptr(values), faiss.swig_ptr(ids), faiss.swig_ptr(lists))
    if index is not ivf:
        index.ntotal = ivf.ntotal
    return error * ERROR_MARGIN


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
        index = faiss.index_factory(d, f"{reduce}IVF{nlist},{LIST_CODEC}")
        sample = np.random.default_rng(0).choice(rows, min(rows, TRAIN_PER_LIST * nlist), False)
        index.train(np.ascontiguousarray(points[np.sort(sample)], dtype=np.float32))
        built = BuiltIndex(index, generation, 0, rows)
    built.add(points, 0, rows)
    return built


def verify(built: BuiltIndex, points: np.ndarray, rows: np.ndarray) -> list[int]:
    """The rows (of `rows`) NOT found at their own id within the index's reconstruction error
    (ties allowed: duplicate images): an index that fails this does not hold these points under
    these ids."""
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
        # its own reconstruction lies within `error` of it; so may others' (copies of it)
        near = found[(dist <= max(dist[0], built.error**2) + tol) & (found >= 0)]
        if r in near:
            continue
        if near.size == found.size and _same_points(points, near, point, tol + built.error**2):
            continue  # more identical points than neighbours asked for (black images)
        missing.append(int(r))
    return missing


def _same_points(points: np.ndarray, ids: np.ndarray, point: np.ndarray, tol: float) -> bool:
    """Whether every id found holds (within tol) this very point: the index maps those ids to
    copies of it, which is all a search can tell when copies outnumber the neighbours returned."""
    found = np.asarray(points[np.sort(ids)], dtype=np.float32)
    return bool((((found - point) ** 2).sum(axis=1) <= 4 * tol).all())
