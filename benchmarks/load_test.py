"""Load test of `gmi serve` on loopback only: C concurrent clients send N identify requests.

    .venv/bin/python benchmarks/load_test.py [--home HUB] [--clients 20] [--requests 200] [--json]

Without --home it builds a small demo hub (8 zoo models) in a temp folder. Starts a real server
process on 127.0.0.1 at a free port, waits for /healthz, runs the bounded load (every request
has a timeout, the whole run a deadline), prints p50/p95/max latency, throughput and errors,
then stops the server. --json prints ONE JSON object (at least "p50_ms", "p95_ms", "errors",
"requests", "rps"); without it, one line per figure.

engine_rps: the same requests, with the same concurrency, through the batched engine in this
process (decode in threads + gmi.server.batcher.IdentifyBatcher, what the service runs behind
its sockets), measured in the same run on the same hub after the server has stopped: the
ceiling the HTTP path is compared with (rps / engine_rps).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from gmi.hub import Hub
from gmi.zoo import load_zoo
from gmi.zoo.export import query_upload, spec_images


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_hub(home: Path, models: int = 8) -> list[bytes]:
    hub = Hub(home)
    names = list(load_zoo())[:models]
    for name in names:
        images, prompts = spec_images(name)
        hub.submit_images(name, images, prompts, progress=False)
    return [query_upload(name, i)[0] for i, name in enumerate(names)]


def engine_rps(home: Path, queries: list[bytes], clients: int, requests: int) -> float:
    """Requests/s of the in-process batched engine: `clients` concurrent identifies at a time,
    each decoding its upload in a thread as the service does, then the shared batcher."""
    import asyncio

    from gmi.images import open_image
    from gmi.server.batcher import IdentifyBatcher

    batcher = IdentifyBatcher(Hub(home))

    async def run() -> float:
        gate = asyncio.Semaphore(clients)

        async def one(i: int) -> None:
            async with gate:
                data = queries[i % len(queries)]
                image = await asyncio.to_thread(open_image, data, f"q{i}.jpg")
                await batcher.identify([image], top=5, together=False, prompt=None)

        await one(0)  # warm: models loaded, index opened, as the server's /healthz wait does
        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(requests)))
        return requests / (time.perf_counter() - started)

    try:
        return asyncio.run(run())
    finally:
        batcher.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", type=Path)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--deadline", type=float, default=600.0)
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = args.home or Path(tmp) / "hub"
        if args.home:
            queries = [query_upload(n, i)[0] for i, n in enumerate(list(load_zoo())[:8])]
        else:
            queries = build_hub(home)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [sys.executable, "-m", "gmi.cli", "--home", str(home), "serve", "--port", str(port)],
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
        try:
            for _ in range(300):
                try:
                    if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.3)
            started = time.perf_counter()
            deadline = started + args.deadline

            def one(i: int) -> tuple[float, int | str]:
                if time.perf_counter() > deadline:
                    return 0.0, "skipped: deadline"
                files = [("images", (f"q{i}.jpg", queries[i % len(queries)], "image/jpeg"))]
                t0 = time.perf_counter()
                try:
                    r = httpx.post(
                        f"{base}/api/identify", files=files, data={"top": "5"}, timeout=120
                    )
                    return time.perf_counter() - t0, r.status_code
                except httpx.HTTPError as exc:
                    return time.perf_counter() - t0, type(exc).__name__

            with ThreadPoolExecutor(max_workers=args.clients) as pool:
                results = list(pool.map(one, range(args.requests)))
            wall = time.perf_counter() - started
        finally:
            server.terminate()
            server.wait(timeout=30)
        engine = engine_rps(home, queries, args.clients, args.requests)
    latencies = sorted(t for t, status in results if status == 200)
    errors = [status for _, status in results if status != 200]
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0] * 99
    report = {
        "clients": args.clients,
        "requests": args.requests,
        "ok": len(latencies),
        "errors": len(errors),
        "error_kinds": sorted({str(e) for e in errors}),
        "p50_ms": round(1000 * statistics.median(latencies), 1) if latencies else None,
        "p95_ms": round(1000 * q[94], 1),
        "max_ms": round(1000 * max(latencies or [0]), 1),
        "throughput_rps": round(len(latencies) / wall, 2),
        "rps": round(len(latencies) / wall, 2),
        "engine_rps": round(engine, 2),
        "http_vs_engine": round(len(latencies) / wall / engine, 3) if engine else None,
        "wall_s": round(wall, 1),
    }
    if args.json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            print(f"{key:>15}  {value}")


if __name__ == "__main__":
    main()
