"""`gmi submit-many`, reliability round three: generated images follow the generator that
made them (D5), a model's digest is of the bytes that were encoded (D6), runs that meet on
one home (D18), manifest checks before any work (D18) and pool workers that die with their
driver (D11)."""

from __future__ import annotations

import json
from pathlib import Path

from test_submit_many import spec_digests, write_manifest

from gmi.hub import Hub
from gmi.submit.manifest import read_manifest
from gmi.submit.many import submit_many

PROMPTS = "a red cat\na blue house at night\na dog in a forest\na castle by the sea\n"


def _run(home: Path, manifest: Path, rows: list[dict], **kwargs):
    write_manifest(manifest, rows)
    return submit_many(Hub(home), read_manifest(manifest), progress=False, **kwargs)


def test_generated_images_are_never_reused_across_generators_or_names(tmp_path):
    """D5: images were resumed by (file, prompt) from HUB/generated/<name>, which remove
    keeps: a model removed and re-submitted with another generator reused the old images
    ("generated: 0"), and `a/b` and `a__b` shared one folder (identical specs)."""
    (tmp_path / "p.txt").write_text(PROMPTS)
    home = tmp_path / "hub"
    first = _run(
        home,
        tmp_path / "a.jsonl",
        [
            {"name": "m", "generator": "zoo:flat-base", "prompts": "p.txt"},
            {"name": "ref", "generator": "zoo:neon-base", "prompts": "p.txt"},
        ],
    )
    assert first.generated == 8 and not first.failed
    Hub(home).remove("m")
    again = _run(
        home,
        tmp_path / "b.jsonl",
        [{"name": "m", "generator": "zoo:neon-base", "prompts": "p.txt"}],
    )
    assert again.generated == 4, "the removed model's images were reused"
    digests = spec_digests(home)
    assert digests["m"] == digests["ref"]
    resumed = _run(  # the same generator again: its kept images are resumed
        tmp_path / "hub2",
        tmp_path / "c.jsonl",
        [{"name": "m", "generator": "zoo:neon-base", "prompts": "p.txt",
          "keep_images": str(home / "generated" / "m")}],
    )  # fmt: skip
    assert resumed.generated == 0
    both = _run(
        tmp_path / "hub3",
        tmp_path / "d.jsonl",
        [
            {"name": "a/b", "generator": "zoo:flat-base", "prompts": "p.txt"},
            {"name": "a__b", "generator": "zoo:pixel-base", "prompts": "p.txt"},
        ],
    )
    assert both.generated == 8 and not both.failed
    digests = spec_digests(tmp_path / "hub3")
    assert digests["a/b"] != digests["a__b"]
    assert len(list((tmp_path / "hub3" / "generated").iterdir())) == 2
    meta = (tmp_path / "hub3" / "generated" / "a~b" / "metadata.jsonl").read_text()
    assert json.loads(meta.splitlines()[0])["generator"].count("zoo:flat-base") == 1


def test_a_folder_changed_during_the_run_is_recorded_under_what_was_encoded(tmp_path, submissions):
    """D6: the driver digested the folders, then the tasks read them again: a folder swapped
    in between was stored with the NEW images under the OLD digest, so a re-run failed it
    ("other inputs") or, once the folder was restored, skipped it with the wrong spec."""
    import shutil

    from gmi.submit.executors import InProcess

    folder = tmp_path / "imgs"
    shutil.copytree(submissions["flat-base"], folder)

    class SwapFirst(InProcess):  # the swap happens after the digests, before the task
        def run(self, fn, jobs, gpu=lambda _: False):
            shutil.rmtree(folder)
            shutil.copytree(submissions["ink-base"], folder)
            yield from super().run(fn, jobs, gpu)

    home = tmp_path / "hub"
    write_manifest(tmp_path / "m.jsonl", [{"name": "late", "images": str(folder)}])
    entries = read_manifest(tmp_path / "m.jsonl")
    version_a = entries[0].inputs_digest()
    done = submit_many(Hub(home), entries, SwapFirst(), progress=False)
    assert done.submitted == ["late"]
    recorded = Hub(home).registry().get("late").extra["inputs"]
    assert recorded == entries[0].inputs_digest() != version_a  # of the images encoded
    again = submit_many(Hub(home), entries, progress=False)  # folder as encoded: skipped
    assert again.skipped == ["late"] and not again.failed
    shutil.rmtree(folder)
    shutil.copytree(submissions["flat-base"], folder)  # version A back: not skipped
    back = submit_many(Hub(home), entries, progress=False)
    assert back.skipped == [] and "other inputs" in back.failed[0]["error"]
