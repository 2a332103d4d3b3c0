"""bfloat16 point rows: half the bytes of float32 on disk, in memory and in the scan.

Why: the exact scan of a hub is bound by the bytes it reads (one product of the query with
every point), and at 10^5-10^6 models the points are most of a hub's memory. bfloat16 keeps
float32's exponent and 8 bits of mantissa (relative rounding <= 2^-9); gmi stores the points
of its learned space that way (centred first, so that ||z||^2 + ||c||^2 - 2 z.c does not
cancel), while norms, log-weights and kernel sums stay float32/float64 (METHOD.md section 7)
and the float64 reference scores the decoded points. numpy has no bfloat16 type: the rows are
kept as their uint16 bit patterns (`Bf16Rows`), decoded to float32 when indexed, and the scan
multiplies them as torch.bfloat16 without a copy (this CPU has AVX512-BF16).
"""

from __future__ import annotations

import threading
import warnings

import numpy as np

STORAGES = ("float32", "bfloat16")


def encode(values: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns (uint16), rounded to nearest, ties to even."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    rounding = ((bits >> 16) & 1) + np.uint32(0x7FFF)
    return ((bits + rounding) >> 16).astype(np.uint16)


def decode(bits: np.ndarray) -> np.ndarray:
    """bfloat16 bit patterns (uint16) -> float32 (exact)."""
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


class Bf16Rows:
    """Rows [n, r] held as bfloat16 bit patterns, read as float32 by indexing: code that
    slices points (the reference, a rerank's subset, an index build) sees float32 values and
    never decodes more rows than it asks for."""

    dtype = np.dtype(np.float32)  # what indexing returns

    def __init__(self, bits: np.ndarray) -> None:
        if bits.dtype != np.uint16 or bits.ndim != 2:
            raise ValueError("bfloat16 rows are a 2-d uint16 array of bit patterns")
        self.bits = bits
        self._lock = threading.Lock()
        self._tensor = None

    @classmethod
    def of(cls, values: np.ndarray) -> Bf16Rows:
        values = np.asarray(values, dtype=np.float32)
        return cls(encode(values).reshape(values.shape))

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.bits.shape)

    @property
    def ndim(self) -> int:
        return 2

    def __len__(self) -> int:
        return int(self.bits.shape[0])

    def __getitem__(self, key) -> np.ndarray:
        return decode(np.asarray(self.bits[key]))

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        values = decode(np.asarray(self.bits))
        return values if dtype is None else values.astype(dtype)

    def tensor(self):
        """The rows as one torch.bfloat16 tensor sharing this memory (made once: torch warns
        that a read-only memory map is not writable; nothing writes through it)."""
        with self._lock:
            if self._tensor is None:
                import torch

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)
                    self._tensor = torch.from_numpy(np.asarray(self.bits)).view(torch.bfloat16)
            return self._tensor


def split(queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float32 queries as two bfloat16 parts, high + low, whose sum is the query to about
    2^-17: rounding the query itself to bfloat16 would move ||z - c||^2 by ~2^-8 z.c, more
    than a close match's whole distance; the low part costs one more row in a product that
    is bound by reading the points."""
    z = np.ascontiguousarray(queries, dtype=np.float32)
    high = encode(z)
    low = encode(z - decode(high))
    return high, low


def cross(rows: Bf16Rows, p0: int, p1: int, queries: np.ndarray) -> np.ndarray:
    """queries [T, r] float32 . rows[p0:p1] -> [T, p1 - p0] float32: the product in bfloat16
    with float32 accumulation, points-major (the faster layout for a few queries), of the
    query's high and low parts (`split`), summed."""
    import torch

    high, low = split(queries)
    t = high.shape[0]
    both = torch.from_numpy(np.concatenate([high, low]).view(np.int16)).view(torch.bfloat16)
    out = (rows.tensor()[p0:p1] @ both.T).float()
    return (out[:, :t] + out[:, t:]).numpy().T


def take_rows(values, rows: np.ndarray) -> np.ndarray:
    """values[rows] as a plain array, of a plain array, a memory map or Bf16Rows (decoded to
    float32: a shortlist's or a band's few rows are scored exactly, in float32)."""
    if isinstance(values, Bf16Rows):
        return values[rows] if rows.size else np.zeros((0, values.shape[1]), np.float32)
    return np.asarray(values[rows]) if rows.size else np.asarray(values[:0])


# |computed - exact| of ||z - c||^2 from `cross`, per unit of |z| |c|: the product's output is
# rounded to bfloat16 (2^-9 relative; torch on the CPU has no float32 output for a bfloat16
# product), the query's two parts leave 2^-17, float32 accumulation over r terms adds r 2^-24;
# x2 for the 2 z.c of the distance, with a margin
PRODUCT_ERROR = 2.0**-8 * 1.05
SUM_ERROR = 2.0**-20  # per unit of ||z||^2 + ||c||^2: the float32 sum of the three terms


def distance_error(query_norms2: np.ndarray, point_norms2: np.ndarray) -> np.ndarray:
    """[T, n] bounds on the error of the scan's squared distances from queries with these
    squared norms [T] to points with these [n] (the largest of a model's, for a model)."""
    zq = np.sqrt(np.asarray(query_norms2, np.float64))[:, None]
    cn = np.asarray(point_norms2, np.float64)[None]
    return PRODUCT_ERROR * zq * np.sqrt(cn) + SUM_ERROR * (zq**2 + cn)
