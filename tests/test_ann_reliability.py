"""The ann index and `gmi check`, reliability round three: more identical images than a
search returns (D12), a new packed generation is not a fault (D13), and the leftovers of
killed writes are listed and repaired (D14)."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from conftest import hub_copy, run_gmi
from gmi.imagefolder import write_imagefolder


def _check(home, *extra):
    from gmi.registry.check import check_registry
    from gmi.registry.store import Registry

    return check_registry(Registry(home, create=False), repair="--repair" in extra, grace_s=0)


def test_many_identical_images_pass_the_self_check(tmp_path, pristine_hub, query_images):
    """D12: 24 black images (a safety filter's) made the ann self-check fail for good: check
    NOT consistent right after --repair, and every process rebuilt the index."""
    from gmi.hub import Hub
    from gmi.search import ann

    home = hub_copy(pristine_hub, tmp_path / "hub", searcher="ann")
    black = [Image.new("RGB", (128, 128)) for _ in range(24)]
    write_imagefolder(tmp_path / "black", black, [f"a prompt {i}" for i in range(24)])
    hub = Hub(home)
    hub.submit_folder("nsfw-filtered", tmp_path / "black", progress=False)
    hub.identify([query_images["ink-base"]], top=2)  # builds and saves the index
    arrays = Hub(home).index().arrays
    assert len(np.unique(np.asarray(arrays.points), axis=0)) < len(arrays.points) - 16
    built, why = ann.load(home, arrays)
    assert built is not None, why  # a new process keeps the saved index
    assert _check(home).consistent
    assert _check(home, "--repair").consistent and _check(home).consistent


def test_a_new_generation_and_leftovers_are_reported_and_repaired(tmp_path, pristine_hub,
                                                                   query_images):  # fmt: skip
    """D13: after a write that starts a new packed generation, check said "ann index: of
    another generation (stale)", NOT consistent. D14: a killed `index rebuild` left its
    .tmp file, a write killed after its commit left the previous generation, and a
    truncated learned-parts file passed check; none was reported."""
    import shutil

    from gmi.hub import Hub
    from gmi.registry.packed import sync
    from gmi.registry.store import Registry
    from gmi.settings import HubSettings

    home = hub_copy(pristine_hub, tmp_path / "hub", searcher="ann")
    Hub(home).identify([query_images["ink-base"]], top=2)  # ann/<generation>.faiss
    registry = Registry(home)
    old_generation = next((home / "packed").iterdir())
    kept = tmp_path / "previous"
    shutil.copytree(old_generation, kept)
    sync(registry.packed_source(), HubSettings.from_strings(registry.settings()), force_full=True)
    report = _check(home)
    assert report.consistent, report.problems  # D13: a new generation is not a fault
    assert any(o.startswith("ann/") for o in report.orphans), report.orphans
    shutil.copytree(kept, old_generation)  # D14: what a kill before the clean-up leaves
    (home / "ann" / f".x.faiss.{os.getpid()}.tmp").write_bytes(b"partial")
    report = _check(home)
    assert report.consistent
    assert f"packed/{old_generation.name}" in report.orphans
    assert f"ann/.x.faiss.{os.getpid()}.tmp" in report.orphans
    repaired = _check(home, "--repair")
    assert repaired.consistent and len(repaired.repaired) >= 3, repaired.repaired
    after = _check(home)
    assert after.consistent and after.orphans == [], after.orphans
    assert not old_generation.exists()
    learned = next((home / "learned").iterdir())
    learned.write_bytes(learned.read_bytes()[:100])  # truncated
    damaged = run_gmi("check", home=home)
    assert damaged.returncode == 1 and "learned-parts file is damaged" in damaged.stdout
    fixed = run_gmi("check", "--repair", home=home)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert run_gmi("check", home=home).returncode == 0
