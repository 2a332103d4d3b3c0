"""Fast exact local scoring over the flat packed arrays: numpy (float32 BLAS; bfloat16 points
multiplied by torch without a copy) or torch (CUDA when present, float16 storage there;
selectable on the CPU).

Per query image z and model m with points c_j, log-weights l_j (prompt kernel + log beta):

    d_m = -[ LSE_j (l_j - s*gamma*||z - c_j||^2) - LSE_j l_j ]

||z - c||^2 = ||z||^2 + ||c||^2 - 2 z.c with ||c||^2 precomputed, so a chunk of points costs
one [T, d] x [d, C] matrix product; the per-model log-sum-exps are segment reductions
(numpy reduceat / torch scatter_reduce), chunked over models so that memory stays bounded
whatever the hub's size. Models are never looped over in Python.
"""

from __future__ import annotations

import threading

import numpy as np

from gmi.search import bf16
from gmi.search.arrays import PackedArrays
from gmi.search.bf16 import Bf16Rows
from gmi.search.weights import PointWeights

CHUNK_POINTS = 1 << 17  # points per chunk: T x 131072 float32 temporaries


def slot_chunks(offsets: np.ndarray, s0: int, s1: int, chunk_points: int):
    """Consecutive slot ranges (s, e) covering s0:s1, each as many whole models as fit in
    chunk_points points (at least one model), so a per-model reduction never spans chunks."""
    s = s0
    while s < s1:
        e = int(np.searchsorted(offsets, offsets[s] + chunk_points, side="right")) - 1
        e = min(max(e, s + 1), s1)
        yield s, e
        s = e


def local_numpy(
    arrays: PackedArrays,
    slots_range: tuple[int, int],
    features: np.ndarray,
    weights: PointWeights,
    sharpness: float,
    chunk_points: int = CHUNK_POINTS,
) -> np.ndarray:
    """Distances [T, s1 - s0] for the consecutive slots s0:s1 (empty slots: +inf)."""
    s0, s1 = slots_range
    z = np.ascontiguousarray(features, dtype=np.float32)
    zz = np.einsum("td,td->t", z, z)[:, None]
    tables = weights.tables(arrays)
    scale = np.float32(sharpness * arrays.gamma)
    out = np.full((z.shape[0], s1 - s0), np.inf)
    offsets = np.asarray(arrays.point_offsets)
    counts = np.diff(offsets)
    for s, e in slot_chunks(offsets, s0, s1, chunk_points):
        p0, p1 = int(offsets[s]), int(offsets[e])
        if p1 > p0:
            d2 = zz + np.asarray(arrays.sq_norms[p0:p1])[None] - 2.0 * products(arrays, p0, p1, z)
            np.maximum(d2, 0.0, out=d2)
            logw = (weights.point_logits(arrays, tables, p0, p1)).astype(np.float32)
            logw += np.log(np.asarray(arrays.beta[p0:p1], dtype=np.float32))[None]
            present = np.flatnonzero(counts[s:e] > 0)
            starts = (offsets[s:e][present] - p0).astype(np.int64)
            sizes = counts[s:e][present]
            near = segment_lse(logw - scale * d2, starts, sizes)
            norm = segment_lse(logw, starts, sizes)
            out[:, s - s0 + present] = -(near - norm)
    return out


def products(arrays: PackedArrays, p0: int, p1: int, z: np.ndarray) -> np.ndarray:
    """z . points[p0:p1] [T, p1 - p0] float32: BLAS for float32 points, the bfloat16 product
    (torch, no copy of the rows) for bfloat16 ones."""
    if isinstance(arrays.points, Bf16Rows):
        return bf16.cross(arrays.points, p0, p1, z)
    return z @ np.asarray(arrays.points[p0:p1]).T


def segment_lse(values: np.ndarray, starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """log-sum-exp of each segment of columns [T, n_segments] (segments non-empty)."""
    peak = np.maximum.reduceat(values, starts, axis=1)
    peak = np.where(np.isfinite(peak), peak, 0.0)
    total = np.add.reduceat(np.exp(values - np.repeat(peak, sizes, axis=1)), starts, axis=1)
    with np.errstate(divide="ignore"):
        return peak.astype(np.float64) + np.log(total.astype(np.float64))


class TorchLocal:
    """The same formula in torch, the packed arrays copied once to `device` (float16 points
    on CUDA: half the memory traffic, rankings checked against float64 in the benchmark)."""

    def __init__(self, arrays: PackedArrays, device: str) -> None:
        import torch

        self.torch = torch
        self.device = torch.device(device)
        stored = arrays.points
        if isinstance(stored, Bf16Rows):  # kept bfloat16, copied from the rows' own memory
            self.dtype = torch.bfloat16
            self.points = stored.tensor().to(self.device)
        else:
            self.dtype = torch.float16 if self.device.type == "cuda" else torch.float32
            self.points = torch.as_tensor(np.array(stored)).to(self.device, self.dtype)
        self.sq_norms = torch.as_tensor(np.array(arrays.sq_norms)).to(self.device)
        log_beta = np.log(np.asarray(arrays.beta, dtype=np.float64)).astype(np.float32)
        self.log_beta = torch.as_tensor(log_beta).to(self.device)
        self.point_slot = torch.as_tensor(arrays.point_slot, dtype=torch.int64).to(self.device)
        prompt_rows = np.asarray(arrays.point_prompt, dtype=np.int64)
        self.point_prompt = torch.as_tensor(prompt_rows).to(self.device)
        self.offsets = np.asarray(arrays.point_offsets)

    def distances(
        self,
        arrays: PackedArrays,
        slots_range: tuple[int, int],
        features: np.ndarray,
        weights: PointWeights,
        sharpness: float,
        chunk_points: int = 1 << 21,
    ) -> np.ndarray:
        """Distances [T, s1 - s0] for the consecutive slots s0:s1 (empty slots: +inf)."""
        torch = self.torch
        s0, s1 = slots_range
        tables = weights.tables(arrays)
        z = torch.as_tensor(np.asarray(features, dtype=np.float32)).to(self.device)
        zz = (z * z).sum(1, keepdim=True)
        t = z.shape[0]
        prompt_table = None
        if tables[0] is not None:
            prompt_table = torch.as_tensor(tables[0], dtype=torch.float32).to(self.device)
        out = torch.full((t, s1 - s0), torch.inf, dtype=torch.float64, device=self.device)
        offsets = self.offsets
        for s, e in slot_chunks(offsets, s0, s1, chunk_points):
            p0, p1 = int(offsets[s]), int(offsets[e])
            if p1 > p0:
                cross = self.cross(z, p0, p1)
                d2 = (zz + self.sq_norms[p0:p1][None] - 2.0 * cross).clamp_min_(0.0)
                logw = self.log_beta[p0:p1][None].expand(t, -1)
                if prompt_table is not None:
                    logw = logw + prompt_table[:, self.point_prompt[p0:p1]]
                if tables[1] is not None:  # visual weights (stated prompts), gathered on host
                    table = weights.point_logits(arrays, (None, tables[1]), p0, p1)
                    logw = logw + torch.as_tensor(table, dtype=torch.float32).to(self.device)
                seg = (self.point_slot[p0:p1] - s)[None].expand(t, -1)
                near = self.segment_lse(logw - sharpness * arrays.gamma * d2, seg, e - s)
                norm = self.segment_lse(logw, seg, e - s)
                out[:, s - s0 : e - s0] = -(near - norm)
        empty = torch.as_tensor(np.diff(offsets)[s0:s1] == 0).to(self.device)
        out[:, empty] = torch.inf
        return out.cpu().numpy()

    def cross(self, z, p0: int, p1: int):
        """z . points[p0:p1] in float32; bfloat16 points meet the query's high and low
        bfloat16 parts (gmi.search.bf16.split), float16 ones the query rounded once."""
        if self.dtype != self.torch.bfloat16:
            return (z.to(self.dtype) @ self.points[p0:p1].T).float()
        high = z.to(self.dtype)
        low = (z - high.float()).to(self.dtype)
        both = self.points[p0:p1] @ self.torch.cat([high, low]).T
        t = z.shape[0]
        return (both[:, :t].float() + both[:, t:].float()).T

    def segment_lse(self, values, seg, n: int):
        torch = self.torch
        t = values.shape[0]
        peak = torch.full((t, n), -torch.inf, device=self.device)
        peak.scatter_reduce_(1, seg, values, "amax", include_self=True)
        peak = torch.where(torch.isfinite(peak), peak, torch.zeros_like(peak))
        total = torch.zeros((t, n), device=self.device)
        total.scatter_add_(1, seg, torch.exp(values - peak.gather(1, seg)))
        empty = total == 0
        result = peak.double() + torch.log(total.double())
        return torch.where(empty, torch.full_like(result, -torch.inf), result)


_TORCH_LOCK = threading.Lock()


def torch_backend(arrays: PackedArrays, device: str) -> TorchLocal:
    """The device copy of these arrays, kept ON the arrays object (a cache attached to the
    object it was computed from cannot answer for another)."""
    with _TORCH_LOCK:
        if device not in arrays.device_copies:
            arrays.device_copies[device] = TorchLocal(arrays, device)
        return arrays.device_copies[device]
