"""Encoding many images in fixed-shape batches, with a progress bar.

Why fixed shapes: a CPU convolution library picks its kernel from the batch shape and the
thread count, and some kernels sum in another order. Measured with EfficientNet-Lite0 here: a
batch of 8 gives features that differ in the 7th digit between 1 and 2 threads, a batch of 16
gives identical bytes at 1..8 threads. Padding every batch to ENCODE_BATCH (repeating the last
image, whose extra rows are dropped) makes a spec image's feature depend on the image alone, so
a model submitted by one `gmi submit`, by a Ray worker with one thread or by a pool process
gets the same specification bytes on the same kind of device.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image
from tqdm import tqdm

from gmi.encoders.base import Encoder

ENCODE_BATCH = 16


def encode_in_batches(
    encoder: Encoder,
    images: Sequence[Image.Image],
    desc: str = "encoding",
    progress: bool = True,
    *,
    fixed_shape: bool = True,
) -> np.ndarray:
    """[n, d] features of `images`, ENCODE_BATCH at a time. fixed_shape pads the last batch
    (reproducible bytes, up to ENCODE_BATCH - 1 extra images); a query path that encodes a
    handful of images passes False and keeps its latency."""
    images = list(images)
    chunks = []
    starts = range(0, len(images), ENCODE_BATCH)
    bar = tqdm(
        starts, desc=desc, unit="batch", disable=not progress or len(starts) < 2, leave=False
    )
    for start in bar:
        batch = images[start : start + ENCODE_BATCH]
        real = len(batch)
        if fixed_shape and real < ENCODE_BATCH:
            batch = batch + [batch[-1]] * (ENCODE_BATCH - real)
        chunks.append(encoder.encode_images(batch)[:real])
    return np.concatenate(chunks) if chunks else np.zeros((0, 0), dtype=np.float32)
