"""The server under heavy and hostile requests: size limits enforced while the body streams
(nothing past the limit touches the disk), slow bodies timed out, CPU work off the event loop
(/healthz answers during a heavy identify), and big images decoded within a pixel budget."""

from __future__ import annotations

import io
import select
import shutil
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx
import numpy as np
import pytest
from PIL import Image
from test_server import running_server

from conftest import hub_copy


@pytest.fixture(scope="module")
def served(tmp_path_factory, pristine_hub):
    from test_reliability_storage import mounted

    home = hub_copy(pristine_hub, tmp_path_factory.mktemp("limits") / "hub")
    # The server's temp dir, where uploads spool, on its own tmpfs: Python's temporary files
    # are unnamed (O_TMPFILE), so only the filesystem's usage shows what they hold.
    with mounted("tmpfs", tmp_path_factory.mktemp("spool"), size="512m") as spool:
        pid: list[int] = []
        env = {"TMPDIR": str(spool), "GMI_BODY_IDLE_TIMEOUT_S": "2"}
        with running_server(home, extra_env=env, pid=pid) as base:
            yield base, spool, pid[0]


def _spooled(spool: Path) -> int:
    return shutil.disk_usage(spool).used


def _peak_while(spool: Path, action):
    """Run action; return its result and the most the spool filesystem held meanwhile."""
    peak, stop = 0, threading.Event()

    def watch() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _spooled(spool))
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        return action(), peak
    finally:
        stop.set()
        watcher.join()


def _raw(base: str, head: bytes, chunks=(), chunked=False, timeout=30.0) -> tuple[bytes, int]:
    """Send a request by hand; returns (the answer's first bytes, body bytes sent before it)."""
    url = urlparse(base)
    sent = 0
    with socket.create_connection((url.hostname, url.port), timeout=timeout) as sock:
        sock.sendall(head)
        for chunk in chunks:
            ready, _, _ = select.select([sock], [], [], 0)
            if ready:
                break
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        sock.settimeout(timeout)
        try:
            return sock.recv(4096), sent
        except (ConnectionResetError, TimeoutError):
            return b"", sent


def test_declared_oversize_body_is_refused_before_reading(served):
    base, spool, _ = served
    head = (
        b"POST /api/identify HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
        b"boundary=b\r\nContent-Length: 1500000000\r\n\r\n"
    )
    answer, _ = _raw(base, head)
    assert answer.startswith(b"HTTP/1.1 413")
    assert _spooled(spool) == 0


def test_undeclared_oversize_body_is_cut_off_at_the_limit(served):
    base, spool, _ = served
    head = (
        b"POST /api/identify HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
        b"boundary=b\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    part = b'--b\r\nContent-Disposition: form-data; name="images"; filename="a.png"\r\n\r\n'
    chunks = [part] + [b"\0" * 2**20] * 200  # 200 MiB offered, the limit is 81 MiB
    baseline = _spooled(spool)
    (answer, sent), peak = _peak_while(spool, lambda: _raw(base, head, chunks, chunked=True))
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < 120 * 2**20  # stopped near the limit, not after everything
    print(
        f"chunked 200 MiB offered: {sent / 2**20:.0f} MiB sent, "
        f"{(peak - baseline) / 2**20:.1f} MiB spooled at most"
    )
    assert peak - baseline <= 82 * 2**20  # at most the limit ever touched the disk
    time.sleep(0.5)
    assert _spooled(spool) - baseline < 2**20  # and what was spooled is gone


def test_stalled_body_times_out(served):
    base, _, _ = served
    head = (
        b"POST /api/identify HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
        b"boundary=b\r\nContent-Length: 5000\r\n\r\n--b\r\n"
    )
    started = time.perf_counter()
    answer, _ = _raw(base, head, timeout=20)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert time.perf_counter() - started < 15


SPELLINGS = [
    "/api/identify%0a",
    "/api/identify%0d",
    "/api/identify%00",
    "/api/models%0a",
    "/api/identify/..%2f",
    "/no-such-route",
]


@pytest.mark.parametrize("path", SPELLINGS)
def test_no_path_spelling_escapes_the_limits(served, path):
    """D3: `/api/identify%0a` matched the route (the router's `$` matches before a trailing
    newline) while the limits were looked up by exact path: 300 MiB was accepted. Every path
    is limited now (the strictest limit for any other than the upload routes) and a control
    character in a path is no route at all."""
    base, spool, _ = served
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
        "boundary=b\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    part = b'--b\r\nContent-Disposition: form-data; name="images"; filename="a.png"\r\n\r\n'
    baseline = _spooled(spool)
    chunks = [part] + [b"\0" * 2**20] * 100
    (answer, sent), peak = _peak_while(spool, lambda: _raw(base, head, chunks, chunked=True))
    assert answer[9:12] in (b"401", b"404", b"413"), answer[:200]
    assert sent <= 8 * 2**20, f"{path}: {sent / 2**20:.0f} MiB taken before the answer"
    assert peak - baseline <= 2 * 2**20
    stalled = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
        "boundary=b\r\nContent-Length: 5000\r\n\r\n--b\r\n"
    ).encode()
    started = time.perf_counter()
    answer, _ = _raw(base, stalled, timeout=20)
    assert answer[9:12] in (b"401", b"404", b"408"), answer[:200]
    assert time.perf_counter() - started < 15


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_healthz_answers_during_a_heavy_identify(served):
    base, _, pid = served
    rng = np.random.default_rng(0)
    big = Image.fromarray(rng.integers(0, 256, (3000, 3000, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    big.save(buffer, format="JPEG", quality=90)
    files = [("images", (f"{i}.jpg", buffer.getvalue(), "image/jpeg")) for i in range(8)]
    small = io.BytesIO()
    big.resize((256, 256)).save(small, format="JPEG")
    warm = httpx.post(  # the first identify of a process loads what every later one uses
        f"{base}/api/identify", files=[("images", ("w.jpg", small.getvalue(), "image/jpeg"))],
        timeout=120,
    )  # fmt: skip
    assert warm.status_code == 200, warm.text
    before = _rss_mb(pid)  # what the heavy request adds is measured, not the warm-up
    result: dict = {}

    def heavy() -> None:
        result["response"] = httpx.post(f"{base}/api/identify", files=files, timeout=120)

    worker = threading.Thread(target=heavy)
    worker.start()
    latencies = []
    while worker.is_alive():
        started = time.perf_counter()
        assert httpx.get(f"{base}/healthz", timeout=30).status_code == 200
        latencies.append(time.perf_counter() - started)
        time.sleep(0.02)
    worker.join()
    assert result["response"].status_code == 200, result["response"].text
    assert len(latencies) >= 3
    # measured ~10-30 ms on 2 cores (docs/reliability.md); the bound only catches a blocked loop
    assert max(latencies) < 1.5, latencies
    assert _rss_mb(pid) - before < 400  # decoded within the pixel budget, not 8 x 27 MB kept
