"""The Milvus searcher, reliability round three: a hub made with a relative --home finds its
Milvus Lite from anywhere, and a copied hub uses its own (D7)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import milvus_lite  # noqa: F401  (requirements.lock installs it: these tests never skip)


def _gmi(cwd, *args):
    return subprocess.run(
        [sys.executable, "-m", "gmi.cli", *args], cwd=cwd, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip


def test_relative_home_and_copied_hub_find_their_own_milvus(tmp_path, submissions, query_images):
    """D7: `init --searcher milvus` with a relative --home stored `base/milvus.db`: from
    another directory identify exited 8 or made a new store there; copies pointed at the
    original's file."""
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    assert _gmi(here, "--home", "base", "init", "--searcher", "milvus").returncode == 0
    done = _gmi(here, "--home", "base", "submit", "ink", "--images", str(submissions["ink-base"]))
    assert done.returncode == 0, done.stderr
    done = _gmi(here, "--home", "base", "submit", "flat", "--images",
                str(submissions["flat-base"]))  # fmt: skip
    assert done.returncode == 0, done.stderr
    query = str(query_images["ink-base"])
    found = _gmi(elsewhere, "--home", str(here / "base"), "identify", query, "--json")
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)[0]["results"][0]["model"] == "ink"
    assert not (elsewhere / "base").exists()  # no store made in the working directory
    shutil.copytree(here / "base", tmp_path / "copy")
    shutil.rmtree(here / "base")  # the original is gone: the copy needs nothing of it
    copied = _gmi(elsewhere, "--home", str(tmp_path / "copy"), "identify", query, "--json")
    assert copied.returncode == 0, copied.stderr
    assert json.loads(copied.stdout)[0]["results"][0]["model"] == "ink"
    assert not (here / "base").exists()


def _damage(storage):
    """What the red team did to Milvus Lite's files: every collection file overwritten."""
    import os

    for path in storage.rglob("*"):
        if path.is_file() and "collections" in path.parts:
            path.write_bytes(os.urandom(512))


def test_a_damaged_milvus_lite_is_reported_repaired_and_healed(tmp_path, pristine_hub,
                                                               query_images):  # fmt: skip
    """D8: a damaged Milvus Lite collection gave a 503 on every identify (server paths in
    the message), check --repair stayed NOT consistent, index rebuild printed pymilvus
    tracebacks and /healthz said "ok". The registry's own Milvus Lite holds nothing but what
    the packed index holds: repair, rebuild and identify make it anew."""
    import httpx
    from test_server import running_server

    from conftest import hub_copy, run_gmi

    home = hub_copy(pristine_hub, tmp_path / "hub", searcher="milvus")
    query = str(query_images["ink-base"])
    assert run_gmi("identify", query, home=home).returncode == 0
    _damage(home / "milvus.db")
    checked = run_gmi("check", home=home)
    assert checked.returncode == 1 and "milvus" in checked.stdout.lower(), checked.stdout
    assert "Traceback" not in checked.stdout + checked.stderr
    repaired = run_gmi("check", "--repair", home=home)
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert "Traceback" not in repaired.stderr
    _damage(home / "milvus.db")
    rebuilt = run_gmi("index", "rebuild", home=home)
    assert rebuilt.returncode == 0 and "Traceback" not in rebuilt.stderr, rebuilt.stderr
    _damage(home / "milvus.db")
    healed = run_gmi("identify", query, "--json", home=home)
    assert healed.returncode == 0 and "Traceback" not in healed.stderr, healed.stderr
    assert json.loads(healed.stdout)[0]["results"][0]["model"] == "ink-base"
    _damage(home / "milvus.db")
    with running_server(home) as base:
        upload = {"images": ("q.jpg", Path(query).read_bytes(), "image/jpeg")}
        answer = httpx.post(f"{base}/api/identify", timeout=120, files=upload)
        assert answer.status_code == 200, answer.text
        assert httpx.get(f"{base}/healthz").json()["status"] == "ok"


def test_a_milvus_it_cannot_repair_is_a_503_without_paths(tmp_path, pristine_hub,
                                                          query_images):  # fmt: skip
    """A Milvus Lite file the user named (it may hold other hubs) is never deleted: identify
    is a 503 that names no path, /healthz says the search engine failed."""
    import httpx
    from test_server import running_server

    from conftest import hub_copy, run_gmi

    shared = tmp_path / "shared.db"
    home = hub_copy(pristine_hub, tmp_path / "hub", searcher="milvus", milvus_uri=str(shared))
    query = str(query_images["ink-base"])
    assert run_gmi("identify", query, home=home).returncode == 0
    _damage(shared)
    with running_server(home) as base:
        upload = {"images": ("q.jpg", Path(query).read_bytes(), "image/jpeg")}
        answer = httpx.post(f"{base}/api/identify", timeout=120, files=upload)
        assert answer.status_code == 503, answer.text
        assert str(tmp_path) not in answer.text and "search engine" in answer.text
        health = httpx.get(f"{base}/healthz").json()
        assert health["status"] == "degraded", health
        assert str(tmp_path) not in json.dumps(health)
    assert shared.exists()
