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
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
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


def multipart_request(port: int, data: bytes, i: int) -> bytes:
    """One identify request, as bytes: built before the clock starts."""
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="top"\r\n\r\n5\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="images"; filename="q{i}.jpg"'
            "\r\nContent-Type: image/jpeg\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    head = (
        f"POST /api/identify HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


async def load(
    port: int, queries: list[bytes], clients: int, requests: int, deadline: float
) -> list[tuple[float, int | str]]:
    """`clients` keep-alive connections, each sending its next request when the last answer
    is read: a load generator that costs little CPU, so that on a 2-core machine the figure
    is the server's (20 httpx clients in threads took a third of the CPU: 22.8 vs 33.7 rps on
    the same server, measured while fixing this)."""
    prepared = [multipart_request(port, queries[i % len(queries)], i) for i in range(requests)]
    todo = list(range(requests))[::-1]
    results: list[tuple[float, int | str]] = []

    async def exchange(reader, writer, i: int) -> int:
        writer.write(prepared[i])
        await writer.drain()
        status = int((await reader.readline()).split()[1])
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        await reader.readexactly(length)
        return status

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while todo:
                i = todo.pop()
                if time.perf_counter() > deadline:
                    results.append((0.0, "skipped: deadline"))
                    continue
                t0 = time.perf_counter()
                try:
                    status = await asyncio.wait_for(exchange(reader, writer, i), timeout=120)
                except (TimeoutError, OSError, ValueError, IndexError) as exc:
                    results.append((time.perf_counter() - t0, type(exc).__name__))
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    continue
                results.append((time.perf_counter() - t0, status))
        finally:
            writer.close()

    await asyncio.gather(*(client() for _ in range(clients)))
    return results


def engine_rps(home: Path, queries: list[bytes], clients: int, requests: int) -> float:
    """Requests/s of the in-process batched engine: `clients` concurrent identifies at a time,
    each decoding its upload in a thread as the service does, then the shared batcher."""
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
            warm = [("images", ("warm.jpg", queries[0], "image/jpeg"))]  # models loaded, as
            httpx.post(f"{base}/api/identify", files=warm, timeout=120)  # engine_rps's warm-up
            started = time.perf_counter()
            results = asyncio.run(
                load(port, queries, args.clients, args.requests, started + args.deadline)
            )
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
