"""The Milvus searcher, reliability round three: a hub made with a relative --home finds its
Milvus Lite from anywhere, and a copied hub uses its own (D7)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

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
