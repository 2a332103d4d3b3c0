"""Shared fixtures: small real submissions made with the built-in zoo (no mocks)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

# `make test` runs the suite on every core (pytest-xdist): each worker, and every process it
# starts, then computes on one thread; a worker per core with two threads each spent a sixth
# of the CPU on contention. Set before torch is imported; features do not depend on it
# (gmi.encoders.batches: the same bytes at any thread count).
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(variable, "1")

import pytest

from gmi.imagefolder import write_imagefolder
from gmi.zoo import load_prompt_set, load_zoo

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SMALL_ZOO = ("flat-base", "ink-base", "photo-base", "neon-base")


def make_submission(folder: Path, model: str, n: int = 12) -> Path:
    """An imagefolder with `n` spec images of a zoo model (PNG + metadata.jsonl)."""
    prompts = list(load_prompt_set())[:n]
    images = [load_zoo()[model].generate(p, seed=i) for i, p in enumerate(prompts)]
    write_imagefolder(folder, images, prompts)
    return folder


@pytest.fixture(scope="session")
def submissions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("submissions")
    return {m: make_submission(root / m, m) for m in SMALL_ZOO}


def build_hub(home: Path, submissions: dict[str, Path], names=SMALL_ZOO[:3]) -> Path:
    """A real hub of small-zoo models (Python API), each described as 'the <name> model'."""
    from gmi.hub import Hub

    hub = Hub(home)
    for name in names:
        hub.submit_folder(name, submissions[name], description=f"the {name} model", progress=False)
    return home


@pytest.fixture(scope="session")
def pristine_hub(tmp_path_factory: pytest.TempPathFactory, submissions) -> Path:
    """The 3-model small-zoo hub, built ONCE per session and never touched: tests that need
    such a hub take their own copy (hub_copy), which is much faster than submitting again."""
    return build_hub(tmp_path_factory.mktemp("pristine") / "hub", submissions)


def hub_copy(pristine: Path, dest: Path, **settings: str) -> Path:
    """A private copy of a hub (search indexes left behind), its settings overwritten."""
    import shutil

    shutil.copytree(pristine, dest, ignore=shutil.ignore_patterns("milvus.db", "ann"))
    if settings:
        from gmi.registry.store import Registry

        Registry(dest).set_settings(settings, overwrite=True)
    return dest


@pytest.fixture(scope="session")
def query_images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One held-out JPEG upload per small-zoo model."""
    from gmi.zoo.export import query_upload

    root = tmp_path_factory.mktemp("queries")
    out = {}
    for i, m in enumerate(SMALL_ZOO):
        data, _ = query_upload(m, i)
        out[m] = root / f"{m}.jpg"
        out[m].write_bytes(data)
    return out


def declared_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares width x height (a decompression bomb's shape)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def tree_digest(root: Path) -> str:
    """Hash of every file's path and bytes under root (the registry is 'unchanged' iff equal).

    SQLite's -shm file is shared memory bookkeeping, rewritten by readers, and an empty -wal
    holds no data; both are skipped.
    """
    digest = hashlib.sha256()
    if not root.exists():
        return "absent"
    for path in sorted(root.rglob("*")):
        empty_wal = path.name.endswith("-wal") and path.is_file() and path.stat().st_size == 0
        if path.is_file() and not path.name.endswith("-shm") and not empty_wal:
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def run_gmi(
    *args: str, home: Path | None = None, check: bool = False
) -> subprocess.CompletedProcess:
    """The real console entry point in a subprocess, as a user or script runs it."""
    cmd = [sys.executable, "-m", "gmi.cli"]
    if home is not None:
        cmd += ["--home", str(home)]
    result = subprocess.run(
        cmd + list(args),
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    if check and result.returncode != 0:
        raise AssertionError(f"gmi {args} failed: {result.stderr}")
    return result
