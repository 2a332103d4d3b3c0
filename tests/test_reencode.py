"""Kept spec images and `gmi reencode` (issue 26 step 1), on real hubs: the submitted bytes
kept as an imagefolder, a whole hub switched to another encoder in one transaction, resumed
after a failure, retried when the catalogue moves, refused for models without images."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import SMALL_ZOO, hub_copy, run_gmi, tree_digest
from gmi.errors import InvalidInputError
from gmi.hub import Hub
from gmi.imagefolder import read_imagefolder
from gmi.submit.executors import InProcess
from gmi.submit.reencode import Staging, reencode


def kept_folder(hub: Hub, name: str) -> Path:
    record = hub.registry().get(name)
    return hub.registry().kept_dir(record.spec_file)


def test_submit_keeps_the_submitted_bytes_as_an_imagefolder(pristine_hub, submissions):
    hub = Hub(pristine_hub)
    folder = kept_folder(hub, "ink-base")
    kept = read_imagefolder(folder).pairs
    submitted = read_imagefolder(submissions["ink-base"]).pairs
    assert [p.prompt for p in kept] == [p.prompt for p in submitted]
    assert [p.path.read_bytes() for p in kept] == [p.path.read_bytes() for p in submitted]
    summary = hub.registry().get("ink-base").extra["kept_images"]
    assert summary["images"] == len(submitted) and summary["policy"] == "original"
    assert summary["bytes"] == sum(p.stat().st_size for p in folder.iterdir())
    info = json.loads(run_gmi("info", "ink-base", "--json", home=pristine_hub, check=True).stdout)
    assert info["kept_images"] == summary


def test_keep_images_jpeg_is_bounded_and_none_keeps_nothing(tmp_path):
    big = [Image.new("RGB", (1600, 1200), (10 * i, 80, 160)) for i in range(3)]
    prompts = ["a red cat", "a blue dog", "a green bird"]
    jpeg = Hub(tmp_path / "jpeg", keep_images="jpeg")
    jpeg.submit_images("m", big, prompts, progress=False)
    pairs = read_imagefolder(kept_folder(jpeg, "m")).pairs
    with Image.open(pairs[0].path) as first:
        assert first.format == "JPEG" and max(first.size) == 1024
    none = Hub(tmp_path / "none", keep_images="none")
    none.submit_images("m", big, prompts, progress=False)
    assert not kept_folder(none, "m").exists()
    assert "kept_images" not in none.registry().get("m").extra
    out = run_gmi("reencode", home=tmp_path / "none")
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "no kept images" in out.stderr and "m" in out.stderr


def test_remove_and_check_handle_kept_folders(pristine_hub, tmp_path):
    home = hub_copy(pristine_hub, tmp_path / "hub")
    hub = Hub(home)
    folder = kept_folder(hub, "flat-base")
    hub.remove("flat-base")
    assert not folder.exists()
    stray = home / "images" / "0123456789abcdef"
    stray.mkdir()
    (stray / "0000.png").write_bytes(b"x")
    report = json.loads(run_gmi("check", "--json", home=home).stdout)
    assert "images/0123456789abcdef" in report["orphans"]
    run_gmi("check", "--repair", "--grace", "0", home=home, check=True)
    assert not stray.exists()


def test_reencode_with_the_same_encoder_changes_no_feature(pristine_hub, tmp_path, query_images):
    home = hub_copy(pristine_hub, tmp_path / "hub")
    hub = Hub(home)
    before = {n: hub.info(n)[1].pair_features for n in SMALL_ZOO[:3]}
    ranked = [m.model for m in hub.identify([query_images["ink-base"]], top=3)[0].results]
    out = run_gmi("reencode", "--json", "--quiet", home=home, check=True)
    result = json.loads(out.stdout)
    assert result["models"] == 3 and result["encoded"] == 3 and result["resumed"] == 0
    for name, features in before.items():
        assert np.array_equal(Hub(home).info(name)[1].pair_features, features)
    again = Hub(home).identify([query_images["ink-base"]], top=3)[0]
    assert [m.model for m in again.results] == ranked
    assert not (home / "reencode").exists() or not any((home / "reencode").iterdir())


def test_reencode_switches_the_whole_hub_to_another_encoder(pristine_hub, tmp_path, query_images):
    home = hub_copy(pristine_hub, tmp_path / "hub")
    old = kept_folder(Hub(home), "photo-base")
    inode = next(old.glob("*.png")).stat().st_ino
    result = reencode(Hub(home), "offline:style", progress=False)
    assert (result.encoder, result.previous_encoder) == ("offline:style", "offline:style+palette")
    hub = Hub(home)
    settings = hub.settings()
    assert settings.encoder == "offline:style" and settings.gamma == result.gamma
    for name in SMALL_ZOO[:3]:
        record, spec = hub.info(name)
        assert spec.encoder == record.encoder == "offline:style"
        assert spec.points.shape[1] == settings.image_dim
        assert record.description == f"the {name} model"  # the row keeps what it had
        assert hub.registry().thumbnail(record, 0).is_file()
    # the kept images are the same files, linked into the new spec's folder
    assert next(kept_folder(hub, "photo-base").glob("*.png")).stat().st_ino == inode
    [found] = hub.identify([query_images["photo-base"]], top=3)
    assert found.results[0].model == "photo-base"
    assert hub.index().arrays.feature_dim == settings.image_dim
    check = json.loads(run_gmi("check", "--json", home=home).stdout)
    assert check["consistent"] and check["orphans"] == []
    # a model submitted afterwards is encoded with the hub's new encoder
    hub.submit_folder("neon-extra", kept_folder(hub, "photo-base"), progress=False)
    assert hub.info("neon-extra")[1].encoder == "offline:style"


class FailingOnce(InProcess):
    """Runs tasks in this process; the `fail_at`-th task raises (a model that breaks)."""

    def __init__(self, fail_at: int) -> None:
        self.fail_at, self.count = fail_at, 0

    def run(self, fn, jobs, gpu=lambda _: False):
        for key, argument in jobs:
            self.count += 1
            if self.count == self.fail_at:
                yield key, None, RuntimeError("the worker ran out of memory")
            else:
                yield key, fn(argument), None


def test_a_failed_reencode_changes_nothing_and_a_rerun_resumes(pristine_hub, tmp_path):
    home = hub_copy(pristine_hub, tmp_path / "hub")
    before = tree_digest(home / "specs")
    with pytest.raises(InvalidInputError, match=r"could not be re-encoded.*out of memory"):
        reencode(Hub(home), "offline:style", FailingOnce(2), progress=False)
    assert tree_digest(home / "specs") == before
    assert Hub(home).settings().encoder == "offline:style+palette"
    result = reencode(Hub(home), "offline:style", progress=False)
    assert result.resumed == 1 and result.encoded == 2
    assert Hub(home).settings().encoder == "offline:style"


class SubmitsMeanwhile(InProcess):
    """While the re-encode's tasks run, another writer submits a model to the same hub."""

    def __init__(self, home: Path, folder: Path) -> None:
        self.home, self.folder, self.done = home, folder, False

    def run(self, fn, jobs, gpu=lambda _: False):
        for key, argument in jobs:
            if not self.done:
                self.done = True
                Hub(self.home).submit_folder("late", self.folder, progress=False)
            yield key, fn(argument), None


def test_a_model_submitted_during_the_reencode_is_reencoded_too(
    pristine_hub, submissions, tmp_path
):
    home = hub_copy(pristine_hub, tmp_path / "hub")
    executor = SubmitsMeanwhile(home, submissions["neon-base"])
    result = reencode(Hub(home), "offline:style", executor, progress=False)
    assert result.models == 4
    hub = Hub(home)
    assert {r.name: r.encoder for r in hub.models()}["late"] == "offline:style"
    assert hub.index().arrays.live_slots.size == 4


def test_a_reencode_that_died_after_its_commit_is_not_done_twice(pristine_hub, tmp_path):
    home = hub_copy(pristine_hub, tmp_path / "hub")
    reencode(Hub(home), "offline:style", progress=False)
    hub = Hub(home)
    target = hub.settings()
    staging = Staging(home, target)
    # what a run killed between its commit and its clean-up leaves: the staged specs
    staging.root.mkdir(parents=True)
    for record in hub.models():
        staging.put(record, (home / "specs" / record.spec_file).read_bytes())
        # staged "from" the spec it replaced: stale for a fresh run, yet already committed
        (staging.root / f"{staging._key(record.name)}.json").write_text(
            json.dumps({"name": record.name, "from": "gone.safetensors"})
        )
    specs = tree_digest(home / "specs")
    result = reencode(Hub(home), "offline:style", progress=False)
    assert result.encoded == 0 and tree_digest(home / "specs") == specs
    assert not staging.root.exists()


def test_an_unknown_encoder_is_refused_before_any_work(pristine_hub, tmp_path):
    home = hub_copy(pristine_hub, tmp_path / "hub")
    before = tree_digest(home)
    out = run_gmi("reencode", "--encoder", "nonsense", home=home)
    assert out.returncode == 2 and "unknown encoder" in out.stderr
    assert out.stderr.count("\n") == 1 and tree_digest(home) == before
    shutil.rmtree(kept_folder(Hub(home), "ink-base"))
    out = run_gmi("reencode", home=home)
    assert out.returncode == 2 and "ink-base" in out.stderr and "kept images" in out.stderr


def test_identify_uses_the_encoder_its_index_was_packed_with(pristine_hub, tmp_path, query_images):
    """Features made by another encoder (a service batch encoded just before a re-encode
    switched the hub) are not ranked against the new rows: the images are encoded again."""

    home = hub_copy(pristine_hub, tmp_path / "hub")
    hub = Hub(home)
    stale = hub.encode([Image.open(query_images["photo-base"]).convert("RGB")])
    assert stale.encoder == "offline:style+palette"
    reencode(hub, "offline:style", progress=False)
    assert hub.index().encoder == "offline:style"
    [fresh] = hub.identify([query_images["photo-base"]], top=3)
    [given] = hub.identify([query_images["photo-base"]], top=3, features=stale)
    assert [m.model for m in given.results] == [m.model for m in fresh.results]
    assert [m.distance for m in given.results] == [m.distance for m in fresh.results]
