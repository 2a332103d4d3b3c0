"""The paper's stack and real generators, exercised with tiny random models (no network):
`gmi submit --diffusers`, `clip:` encoders, `blip:` and `clip-interrogator`, presets, doctor,
and fast, clear failures when weights are missing."""

import json
import time

import pytest
from tiny_hf import make_blip, make_clip, make_stable_diffusion

from conftest import make_submission, run_gmi


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-hf")
    return {
        "clip": make_clip(root / "clip"),
        "blip": make_blip(root / "blip"),
        "sd": make_stable_diffusion(root / "sd"),
        "root": root,
    }


def test_submit_from_a_diffusers_pipeline_resumes(tiny, tmp_path):
    import hashlib
    import shutil

    from PIL import Image, PngImagePlugin

    # a single-file checkpoint beside the diffusers folders, as hub repositories ship one: its
    # A1111 "Model hash" (sha256[:10]) is recorded at submit
    checkpoint = tiny["sd"] / "tiny-sd.safetensors"
    shutil.copy(next((tiny["sd"] / "unet").glob("*.safetensors")), checkpoint)
    autov2 = hashlib.sha256(checkpoint.read_bytes()).hexdigest()[:10]
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("# four prompts\na red cat\na blue house\na dog at night\na castle\n")
    keep = tmp_path / "generated"
    args = [
        "submit",
        "tiny-sd",
        "--diffusers",
        str(tiny["sd"]),
        "--prompts",
        str(prompts),
        "--images-per-prompt",
        "2",
        "--steps",
        "2",
        "--device",
        "cpu",
        "--keep-images",
        str(keep),
        "--json",
        "--quiet",
    ]
    first = run_gmi(*args, home=tmp_path / "hub")
    assert first.returncode == 0, first.stderr
    record = json.loads(first.stdout)
    assert record["n_images"] == 8 and record["generated"] == 8
    info = json.loads(run_gmi("info", "tiny-sd", "--json", home=tmp_path / "hub").stdout)
    assert autov2 in info["model_hashes"]
    made = tmp_path / "made-by-tiny-sd.png"  # an image a front-end saved with that checkpoint
    pnginfo = PngImagePlugin.PngInfo()
    pnginfo.add_text("parameters", f"a red cat\nSteps: 2, Seed: 1, Model hash: {autov2}")
    Image.open(keep / "0000_0.png").save(made, pnginfo=pnginfo)
    found = run_gmi("identify", str(made), "--json", home=tmp_path / "hub")
    [entry] = json.loads(found.stdout)
    assert entry["results"][0] == {**entry["results"][0], "model": "tiny-sd", "exact_match": True}
    assert entry["prompt_source"] == "embedded" and entry["prompt"] == "a red cat"
    lines = (keep / "metadata.jsonl").read_text().splitlines()
    assert len(lines) == 8 and json.loads(lines[0])["text"] == "a red cat"
    again = run_gmi(*args, "--replace", home=tmp_path / "hub")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["generated"] == 0  # every image reused: resumed
    (keep / "0003_1.png").unlink()  # an interrupted run: one image missing
    third = run_gmi(*args, "--replace", home=tmp_path / "hub")
    assert json.loads(third.stdout)["generated"] == 1


def test_clip_encoder_with_blip_and_clip_interrogator(tiny, tmp_path, query_images):
    home = tmp_path / "hub"
    init = run_gmi(
        "init",
        "--encoder",
        f"clip:{tiny['clip']}",
        "--interrogator",
        f"blip:{tiny['blip']}",
        "--scoring",
        "rkme",
        home=home,
    )
    assert init.returncode == 0, init.stderr
    for name in ("flat-base", "neon-base"):
        folder = make_submission(tmp_path / name, name, n=8)
        assert (
            run_gmi("submit", name, "--images", str(folder), "--quiet", home=home).returncode == 0
        )
    out = run_gmi("identify", str(query_images["neon-base"]), "--json", home=home)
    assert out.returncode == 0, out.stderr
    [entry] = json.loads(out.stdout)
    assert isinstance(entry["prompt"], str) and len(entry["results"]) == 2
    ci = run_gmi(
        "identify",
        str(query_images["neon-base"]),
        "--json",
        "--interrogator",
        f"clip-interrogator:{tiny['blip']}",
        home=home,
    )
    assert ci.returncode == 0, ci.stderr
    assert ci.stdout.count(",") >= 4  # caption + medium, movement and three flavours
    info = json.loads(run_gmi("info", "flat-base", "--json", home=home).stdout)
    assert info["encoder"] == f"clip:{tiny['clip']}" and info["image_dim"] == 16


def test_missing_weights_fail_at_once_with_instructions(tmp_path):
    started = time.perf_counter()
    result = run_gmi("init", "--encoder", "clip:/nonexistent/clip", home=tmp_path / "a")
    assert result.returncode == 6 and "missing" in result.stderr
    result = run_gmi("init", "--preset", "paper", home=tmp_path / "b")
    assert result.returncode == 6 and "huggingface-cli download" in result.stderr
    prompts = tmp_path / "p.txt"
    prompts.write_text("a cat\n")
    result = run_gmi(
        "submit",
        "x",
        "--diffusers",
        "some-org/not-here",
        "--prompts",
        str(prompts),
        home=tmp_path / "c",
    )
    assert result.returncode == 6 and "not-here" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert time.perf_counter() - started < 60  # nothing waits on a network
    assert not (tmp_path / "a").exists() and not (tmp_path / "c" / "registry.db").exists()


def test_doctor_lists_every_component():
    result = run_gmi("doctor", "--json")
    assert result.returncode == 0, result.stderr
    checks = json.loads(result.stdout)
    names = {(c["kind"], c["name"]) for c in checks}
    assert ("preset", "offline") in names and ("preset", "paper") in names
    offline = next(c for c in checks if c["name"] == "offline" and c["kind"] == "preset")
    assert offline["ok"]


def test_open_clip_is_an_optional_extra(tmp_path):
    result = run_gmi(
        "init", "--encoder", "open_clip:ViT-B-32/laion2b_s34b_b79k", home=tmp_path / "hub"
    )
    assert result.returncode == 6 and "gmi[open-clip]" in result.stderr
