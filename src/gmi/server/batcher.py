"""Concurrent identify requests share one encoder pass.

Encoding is most of an identification's cost, and on a GPU the backbone is far cheaper per
image in a batch than one image at a time. One worker thread takes every request waiting when
it becomes free (up to batch_images() images: 32 on a GPU, 1 on the CPU, where a batch is not
cheaper per image), encodes all their images in one pass, then ranks each
request on its own (scoring is cheap and per request). At low load a request is served alone,
at once (no waiting window); under load the queue fills while a batch runs and the next batch
is larger: latency stays bounded and throughput grows.

A request's answer depends only on its own images: the features of a batch are split back per
request by position, each request keeps its own parameters, and a request whose ranking fails
gets its own error while the others are answered (a batch-wide encoder failure falls back to
encoding each request alone).
"""

from __future__ import annotations

import asyncio
import os
import queue
import threading
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from gmi.hub import Hub

# images per encoder pass (GMI_BATCH_IMAGES overrides): on a GPU a batch is far cheaper per
# image than one image; on this project's CPUs it is not (EfficientNet-Lite0, 2 cores: 10 ms
# for one image, 46 ms for 4, 84 ms for 8), and every request of a batch waits for the whole
# pass: over HTTP on the demo hub, 1 image per pass served 58 requests/s at 20 clients against
# 36 with 32 (docs/performance.md). Requests still queue for ONE worker either way.
GPU_BATCH_IMAGES = 32
CPU_BATCH_IMAGES = 1


def batch_images(device: str) -> int:
    """Images per encoder pass for a hub computing on `device` ('cpu' or 'cuda')."""
    configured = os.environ.get("GMI_BATCH_IMAGES")
    if configured:
        return max(1, int(configured))
    return GPU_BATCH_IMAGES if device == "cuda" else CPU_BATCH_IMAGES


@dataclass
class _Request:
    images: list[Image.Image]
    options: dict[str, Any]
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    done: bool = field(default=False)

    def answer(self, result: Any = None, error: BaseException | None = None) -> None:
        if self.done:
            return
        self.done = True

        def settle() -> None:
            if self.future.cancelled():
                return
            if error is not None:
                self.future.set_exception(error)
            else:
                self.future.set_result(result)

        self.loop.call_soon_threadsafe(settle)


class IdentifyBatcher:
    def __init__(self, hub: Hub, max_images: int | None = None) -> None:
        self.hub = hub
        self.max_images = max_images if max_images is not None else batch_images(hub.compute_device)
        self._queue: queue.Queue[_Request | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.batches = 0  # how many encoder passes ran (tests, /healthz-free diagnostics)

    async def identify(self, images: list[Image.Image], **options: Any) -> tuple[list, list]:
        """(identifications, evidence) for these images, as Hub.identify would give them."""
        self._start()
        loop = asyncio.get_running_loop()
        request = _Request(images, options, loop.create_future(), loop)
        self._queue.put(request)
        return await request.future

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._thread = None

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="gmi-identify", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch, size = [first], len(first.images)
            while size < self.max_images:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)  # stop after this batch
                    break
                batch.append(item)
                size += len(item.images)
            self._serve(batch)

    def _serve(self, batch: list[_Request]) -> None:
        self.batches += 1
        try:
            features = self.hub.encode([im for r in batch for im in r.images])
        except Exception:
            features = None
        start = 0
        for request in batch:
            n = len(request.images)
            mine = None if features is None else features[start : start + n]
            start += n
            try:
                found = self.hub.identify(request.images, features=mine, **request.options)
                request.answer((found, [self.hub.evidence(r) for r in found]))
            except BaseException as exc:
                request.answer(error=exc)
