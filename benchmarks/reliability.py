"""Reliability figures for docs/reliability.md, measured with real processes (not a test).

    .venv/bin/python benchmarks/reliability.py [--kills 20] [--races 5] [--json]

1. kill trials: `gmi submit` (real offline encoder) SIGKILLed at a random moment; afterwards
   every model must be whole or absent (`gmi check`), and identify must work;
2. concurrent first submits: two `gmi submit` into a new registry at once; one gamma;
3. repair during replace: `gmi check --repair` in a loop beside 8 `submit --replace`;
4. uploads: a declared 1.5 GB body, an undeclared 200 MiB body, an unauthorised 600 MB upload:
   status and the most the server's temp directory held meanwhile;
5. /healthz latency while an 8-image identify (3000x3000 JPEGs) and a 48-image upload run.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from gmi.imagefolder import write_imagefolder
from gmi.registry import Registry
from gmi.registry.check import check_registry
from gmi.zoo import load_prompt_set, load_zoo
from gmi.zoo.export import query_upload

TOKEN = "bench-token"


def gmi(home: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "gmi.cli", "--home", str(home), *args]


def folder_of(root: Path, model: str, n: int) -> Path:
    prompts = list(load_prompt_set())[:n]
    images = [load_zoo()[model].generate(p, seed=i) for i, p in enumerate(prompts)]
    write_imagefolder(root / model, images, prompts)
    return root / model


def kill_trials(root: Path, folders: dict[str, Path], trials: int) -> dict:
    home = root / "kills"
    subprocess.run(
        gmi(home, "submit", "base", "--images", str(folders["flat-base"])),
        check=True,
        capture_output=True,
    )
    rng = random.Random(0)
    for i in range(trials):
        proc = subprocess.Popen(
            gmi(home, "submit", f"m{i}", "--images", str(folders["ink-base"]), "--quiet"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(1.0, 7.0))  # model load ~3 s, the submit ~4.5 s
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    registry = Registry(home, create=False)
    report = check_registry(registry)
    query = root / "q.jpg"
    query.write_bytes(query_upload("ink-base", 1)[0])
    identify = subprocess.run(gmi(home, "identify", str(query)), capture_output=True)
    return {
        "trials": trials,
        "present_whole": len(registry.list()) - 1,
        "absent": trials - (len(registry.list()) - 1),
        "inconsistent": len(report.problems),
        "orphans_left": len(report.orphans),
        "identify_ok": identify.returncode == 0,
    }


def first_submit_races(root: Path, folders: dict[str, Path], trials: int) -> dict:
    single_gamma = 0
    failures = 0
    for i in range(trials):
        home = root / f"race{i}"
        procs = [
            subprocess.Popen(
                gmi(home, "submit", m, "--images", str(folders[m]), "--quiet"),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for m in ("flat-base", "photo-base")
        ]
        failures += sum(p.wait() != 0 for p in procs)
        registry = Registry(home, create=False)
        gammas = {registry.load_spec(r).gamma for r in registry.list()}
        single_gamma += len(gammas) == 1 and check_registry(registry).consistent
    return {"trials": trials, "one_gamma_and_consistent": single_gamma, "failed_submits": failures}


def repair_during_replace(root: Path, folders: dict[str, Path]) -> dict:
    home = root / "repair"
    subprocess.run(
        gmi(home, "submit", "m", "--images", str(folders["flat-base"])),
        check=True,
        capture_output=True,
    )

    def replace_eight_times() -> None:  # real CLI processes, one after another
        for i in range(8):
            folder = folders["flat-base" if i % 2 else "ink-base"]
            replace = gmi(home, "submit", "m", "--images", str(folder), "--replace", "--quiet")
            subprocess.run(replace, check=True, capture_output=True)

    writer = threading.Thread(target=replace_eight_times)
    writer.start()
    repairs, errors = 0, 0
    while writer.is_alive():
        done = subprocess.run(gmi(home, "check", "--repair"), capture_output=True, text=True)
        repairs += 1
        errors += "Traceback" in done.stderr
    registry = Registry(home, create=False)
    return {
        "replaces": 8,
        "repair_runs": repairs,
        "tracebacks": errors,
        "models_left": [r.name for r in registry.list()],
        "consistent": check_registry(registry).consistent,
    }


class Server:
    def __init__(self, home: Path, spool: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        env = {**os.environ, "GMI_ADMIN_TOKEN": TOKEN, "TMPDIR": str(spool)}
        self.proc = subprocess.Popen(
            gmi(home, "serve", "--port", str(self.port)),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.base = f"http://127.0.0.1:{self.port}"
        for _ in range(300):
            try:
                httpx.get(f"{self.base}/healthz", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("server did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=20)


def _peak_usage(spool: Path, action) -> tuple[object, int]:
    """Run action; the most the spool filesystem held meanwhile (Python's temporary files are
    unnamed, O_TMPFILE: only the filesystem's usage shows them, hence a tmpfs of its own)."""
    baseline = shutil.disk_usage(spool).used
    peak, stop = 0, threading.Event()

    def watch() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, shutil.disk_usage(spool).used - baseline)
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result = action()
    finally:
        stop.set()
        watcher.join()
    return result, peak


def _raw(port: int, head: bytes, chunk_count: int = 0) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(head)
        if chunk_count:  # a chunked multipart body: an image part that never ends
            part = b'--b\r\nContent-Disposition: form-data; name="images"; filename="a.png"\r\n\r\n'
            sock.sendall(b"%x\r\n%s\r\n" % (len(part), part))
        for _ in range(chunk_count):
            try:
                sock.sendall(b"100000\r\n" + b"\0" * 0x100000 + b"\r\n")
            except OSError:
                break
        try:
            return sock.recv(64).split(b"\r\n")[0].decode()
        except OSError:
            return "connection closed"


def uploads(server: Server, spool: Path) -> dict:
    multipart = b"Content-Type: multipart/form-data; boundary=b\r\n"
    cases = {
        "identify, declared 1.5 GB": (
            b"POST /api/identify HTTP/1.1\r\nHost: x\r\n"
            + multipart
            + b"Content-Length: 1500000000\r\n\r\n",
            0,
        ),
        "identify, undeclared 200 MiB (chunked)": (
            b"POST /api/identify HTTP/1.1\r\nHost: x\r\n"
            + multipart
            + b"Transfer-Encoding: chunked\r\n\r\n",
            200,
        ),
        "models, no token, declared 600 MB": (
            b"POST /api/models HTTP/1.1\r\nHost: x\r\n"
            + multipart
            + b"Content-Length: 600000000\r\n\r\n",
            0,
        ),
    }
    out = {}
    for label, (head, chunks) in cases.items():
        status, peak = _peak_usage(spool, lambda h=head, c=chunks: _raw(server.port, h, c))
        out[label] = {"answer": status, "peak_temp_bytes": peak}
    return out


def healthz_latency(server: Server, folders: dict[str, Path]) -> dict:
    rng = np.random.default_rng(0)
    big = Image.fromarray(rng.integers(0, 256, (3000, 3000, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    big.save(buffer, format="JPEG", quality=90)
    identify_files = [("images", (f"{i}.jpg", buffer.getvalue(), "image/jpeg")) for i in range(8)]
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folders["big"].iterdir()):
            zf.write(path, path.name)
    heavy = {
        "8-image identify (3000x3000 JPEG)": lambda: httpx.post(
            f"{server.base}/api/identify", files=identify_files, timeout=300
        ),
        "48-image upload": lambda: httpx.post(
            f"{server.base}/api/models",
            data={"name": "big-upload"},
            files={"archive": ("a.zip", archive.getvalue(), "application/zip")},
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=300,
        ),
    }
    out = {}
    for label, request in heavy.items():
        result: dict = {}
        worker = threading.Thread(target=lambda r=request, out=result: out.setdefault("r", r()))
        worker.start()
        latencies = []
        while worker.is_alive():
            started = time.perf_counter()
            httpx.get(f"{server.base}/healthz", timeout=60)
            latencies.append(1000 * (time.perf_counter() - started))
            time.sleep(0.02)
        worker.join()
        out[label] = {
            "status": result["r"].status_code,
            "healthz_polls": len(latencies),
            "healthz_p50_ms": round(float(np.median(latencies)), 1),
            "healthz_max_ms": round(float(np.max(latencies)), 1),
        }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--races", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="gmi-reliability-"))
    try:
        folders = {
            m: folder_of(root / "in", m, 12) for m in ("flat-base", "ink-base", "photo-base")
        }
        folders["big"] = folder_of(root / "big", "neon-base", 48)
        report = {
            "kill_trials": kill_trials(root, folders, args.kills),
            "first_submit_races": first_submit_races(root, folders, args.races),
            "repair_during_replace": repair_during_replace(root, folders),
        }
        home = root / "served"
        first = gmi(home, "submit", "flat-base", "--images", str(folders["flat-base"]))
        subprocess.run(first, check=True, capture_output=True)
        spool = root / "spool"
        spool.mkdir()
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1g", "tmpfs", str(spool)], capture_output=True
        )
        server = Server(home, spool)
        try:
            if mounted.returncode == 0:
                report["uploads"] = uploads(server, spool)
            else:
                report["uploads"] = "not measured: mounting a tmpfs needs root"
            report["healthz_during_heavy_requests"] = healthz_latency(server, folders)
        finally:
            server.stop()
            if mounted.returncode == 0:
                subprocess.run(["umount", "-l", str(spool)], capture_output=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
