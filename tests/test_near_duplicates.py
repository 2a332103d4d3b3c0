"""Near-duplicate warnings on submit (issue 26 step 3): a re-upload of a model under another
name is flagged, a sibling is not, a shared checkpoint identity always is; through the CLI,
submit-many and the HTTP service, on real hubs."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest
from test_server import TOKEN, running_server

from conftest import SMALL_ZOO, hub_copy, make_submission, run_gmi
from gmi.identify.duplicates import copy_test, paired_test
from gmi.imagefolder import write_imagefolder
from gmi.zoo import load_prompt_set, load_zoo


def reupload(folder: Path, model: str, n: int = 12) -> Path:
    """The same zoo model's images for the same prompts, drawn with other seeds."""
    prompts = list(load_prompt_set())[:n]
    images = [load_zoo()[model].generate(p, seed=5_000 + i) for i, p in enumerate(prompts)]
    write_imagefolder(folder, images, prompts)
    return folder


def test_the_tests_flag_same_distributions_and_not_shifted_ones():
    rng = np.random.default_rng(3)
    prompts = rng.normal(size=(24, 8))
    base = rng.normal(size=(24, 16))
    copy = base + rng.normal(scale=0.3, size=base.shape)
    again = base + rng.normal(scale=0.3, size=base.shape)
    statistic, threshold = paired_test(copy, again, prompts)
    assert statistic <= threshold
    shifted = again + 0.4  # a sibling: the same change for every prompt
    statistic, threshold = paired_test(shifted, copy, prompts)
    assert statistic > threshold
    statistic, threshold = copy_test(copy, again, gamma=0.05)
    assert statistic <= threshold
    statistic, threshold = copy_test(copy + 1.5, again, gamma=0.05)
    assert statistic > threshold


def test_submit_warns_of_a_reupload_and_not_of_a_sibling(pristine_hub, tmp_path):
    home = hub_copy(pristine_hub, tmp_path / "hub")
    copy = run_gmi("submit", "renamed", "--images", str(reupload(tmp_path / "c", "ink-base")),
                   "--json", "--quiet", home=home)  # fmt: skip
    assert copy.returncode == 0, copy.stderr
    assert "near-duplicate of ink-base" in copy.stderr
    assert json.loads(copy.stdout)["near_duplicate_of"] == "ink-base"
    sibling = make_submission(tmp_path / "s", "ink-heavy")
    out = run_gmi("submit", "ink-heavy", "--images", str(sibling), "--json", "--quiet", home=home)
    assert out.returncode == 0 and "near-duplicate" not in out.stderr
    assert json.loads(out.stdout)["near_duplicate_of"] is None


def test_a_shared_checkpoint_identity_is_a_near_duplicate(pristine_hub, submissions, tmp_path):
    home = hub_copy(pristine_hub, tmp_path / "hub")
    sha = "a" * 64
    run_gmi("submit", "neon-base", "--images", str(submissions["neon-base"]), "--model-hash",
            sha, "--quiet", home=home, check=True)  # fmt: skip
    out = run_gmi("submit", "other-name", "--images", str(submissions["photo-base"]),
                  "--model-hash", sha, "--quiet", home=home)  # fmt: skip
    assert out.returncode == 0 and "near-duplicate of neon-base" in out.stderr
    assert "checkpoint identity" in out.stderr


def test_submit_many_lists_near_duplicates(pristine_hub, tmp_path):
    home = hub_copy(pristine_hub, tmp_path / "hub")
    manifest = tmp_path / "models.jsonl"
    rows = [
        {"name": "copy-of-flat", "images": str(reupload(tmp_path / "f", "flat-base"))},
        {"name": "neon-base", "images": str(make_submission(tmp_path / "n", "neon-base"))},
    ]
    manifest.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = run_gmi("submit-many", str(manifest), "--json", "--quiet", home=home, check=True)
    result = json.loads(out.stdout)
    assert sorted(result["submitted"]) == ["copy-of-flat", "neon-base"]
    assert result["near_duplicates"] == [
        {"name": "copy-of-flat", "near_duplicate_of": "flat-base", "reason": "images"}
    ]
    assert "copy-of-flat is a near-duplicate of flat-base" in out.stderr


@pytest.mark.parametrize("model", [SMALL_ZOO[2]])
def test_http_submit_answers_near_duplicate_of(pristine_hub, tmp_path, model):
    home = hub_copy(pristine_hub, tmp_path / "hub")
    folder = reupload(tmp_path / "u", model)
    files = [("files", (p.name, p.read_bytes(), "image/png")) for p in sorted(folder.glob("*.png"))]
    metadata = (folder / "metadata.jsonl").read_text()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with running_server(home) as base:
        made = httpx.post(f"{base}/api/models", data={"name": "again", "metadata": metadata},
                          files=files, headers=auth, timeout=120)  # fmt: skip
        assert made.status_code == 201, made.text
        assert made.json()["near_duplicate_of"] == model
