"""Answers a user can read: calibrated scores, "no close match", where the prompt came from,
and generation metadata embedded in the image (AUTOMATIC1111, ComfyUI, EXIF), written the way
those front-ends write it (PIL's PNG text chunks and EXIF, as they use)."""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from conftest import hub_copy, run_gmi, tree_digest
from gmi.hub import Hub
from gmi.images import open_image
from gmi.metadata import read_embedded
from gmi.metadata.containers import decode_user_comment
from gmi.metadata.writers.a1111 import parse_a1111
from gmi.spec.calibration import Calibration
from gmi.zoo.export import query_upload

HASH = "6ce0161689"
A1111 = (
    "two red cats in a forest at night, highly detailed\n"
    "sharp focus\n"
    "Negative prompt: blurry, lowres\n"
    "Steps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 42, Size: 512x512, Model hash: "
    f'{HASH}, Model: ink-v1, Lora hashes: "a: 0123456789ab, b: ba9876543210", Version: v1.10.1'
)


@pytest.fixture(scope="module")
def hub_home(tmp_path_factory, submissions, pristine_hub):
    """The small zoo, ink-base carrying a checkpoint hash (a copy of the session's hub plus
    two in-process submits: the CLI's submit is tested in test_cli)."""
    home = hub_copy(pristine_hub, tmp_path_factory.mktemp("readable") / "hub")
    hub = Hub(home)
    hub.submit_folder(
        "ink-base", submissions["ink-base"], replace=True, model_hashes=[HASH], progress=False
    )
    hub.submit_folder("neon-base", submissions["neon-base"], progress=False)
    hub.registry().sync_index(hub.settings(), full=True)  # no dead slot of the replaced copy
    return home


def zoo_png(model: str, index: int, info: PngImagePlugin.PngInfo | None = None) -> bytes:
    """A zoo model's image saved as a front-end saves it: PNG with text chunks."""
    data, _ = query_upload(model, index)
    image = Image.open(io.BytesIO(data)).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def a1111_info(text: str = A1111) -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", text)  # what AUTOMATIC1111 / Forge write
    return info


def comfy_info(prompt: str | None, workflow: str | None = None) -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    if prompt is not None:
        info.add_text("prompt", prompt)  # ComfyUI's SaveImage: the executed graph as JSON
    if workflow is not None:
        info.add_text("workflow", workflow)
    return info


COMFY_GRAPH = {
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "ink-v1.safetensors"}},
    "6": {
        "class_type": "CLIPTextEncode",
        "inputs": {"text": "one castle at dawn", "clip": ["4", 1]},
    },
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "ugly, watermark", "clip": ["4", 1]}},
    "3": {
        "class_type": "KSampler",
        "inputs": {"seed": 1, "steps": 20, "positive": ["6", 0], "negative": ["7", 0]},
    },
}


def identify_json(home, path, *extra):
    done = run_gmi("identify", str(path), "--json", "--top", "4", *extra, home=home)
    assert done.returncode == 0, done.stderr
    [entry] = json.loads(done.stdout)
    return entry


# -- calibration ------------------------------------------------------------------------------
def test_calibration_is_a_monotone_map_onto_0_1():
    cal = Calibration(np.sort(np.array([1.0, 2.0, 3.0, 4.0, 5.0])), close_quantile=0.8)
    d = np.array([0.0, 1.0, 3.0, 5.0, 9.0])
    assert cal.score(d).tolist() == [1.0, 1.0, 0.5, 0.0, 0.0]
    assert cal.threshold == pytest.approx(4.2)
    assert cal.close(d).tolist() == [True, True, True, False, False]
    round_trip = Calibration.from_arrays(cal.arrays())
    assert np.array_equal(round_trip.held_out, cal.held_out)
    with pytest.raises(ValueError):
        Calibration.from_arrays({"held_out": np.array([np.nan]), "close_quantile": np.array([1])})


def test_held_out_images_leave_their_own_point_out(hub_home):
    """With its own point in, a spec image would match its model far too well (a fake
    calibration); held out, every one of them must score worse than with its point in."""
    from gmi.encoders.base import l2_normalise
    from gmi.search.rules import padded
    from gmi.spec.calibration import held_out_distances
    from gmi.spec.scoring import score_requirements

    index = Hub(hub_home).index()
    calibration = index.learned["calibration"]
    assert calibration.held_out.size == 4 * 12 and np.all(np.isfinite(calibration.held_out))
    arrays = index.arrays
    assert arrays.alive.all()
    stack, _ = padded(arrays, arrays.live_slots, gram=False)
    features, pair_model = np.asarray(arrays.pair_features), arrays.pair_slot
    rows = np.arange(len(pair_model))
    ridge = index.learned["image_to_prompt"]
    predicted = l2_normalise(ridge.predict(features))
    held = held_out_distances(
        stack, features, pair_model, rows, predicted.__getitem__, 0.1, "local"
    )
    assert np.allclose(np.sort(held), calibration.held_out)
    with_own_point = score_requirements(
        stack, features, [[r] for r in rows], predicted, 0.1, "mean", "local"
    )[rows, pair_model]
    assert np.all(held > with_own_point)


def test_json_contract_scores_and_close_match(hub_home, query_images):
    entry = identify_json(hub_home, query_images["photo-base"])
    assert entry["prompt_source"] == "interrogated" and entry["close_match"] is True
    top = entry["results"][0]
    assert top["model"] == "photo-base" and top["close_match"] is True
    assert top["exact_match"] is False
    assert top["score"] >= 0.05  # the README's promise: a true match reads as a match
    scores = [r["score"] for r in entry["results"]]
    distances = [r["distance"] for r in entry["results"]]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert scores == sorted(scores, reverse=True) and distances == sorted(distances)


def test_unrelated_image_says_no_close_match(hub_home, tmp_path):
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)  # nothing any model draws
    path = tmp_path / "noise.jpg"
    Image.fromarray(noise).save(path, quality=90)
    entry = identify_json(hub_home, path)
    assert entry["close_match"] is False
    assert all(r["close_match"] is False and r["score"] < 0.01 for r in entry["results"])
    text = run_gmi("identify", str(path), home=hub_home)
    assert "no close match" in text.stdout and "guessed prompt:" in text.stdout


# -- embedded generation metadata -------------------------------------------------------------
def test_parse_a1111_parameters():
    found = parse_a1111(A1111)
    assert found.prompt == "two red cats in a forest at night, highly detailed\nsharp focus"
    assert found.negative_prompt == "blurry, lowres"
    assert found.model_hash == HASH and found.model == "ink-v1"
    only_prompt = parse_a1111("a lighthouse in fog")
    assert only_prompt.prompt == "a lighthouse in fog" and only_prompt.model_hash is None
    bad_hash = parse_a1111("x\nSteps: 1, Seed: 2, Model hash: <script>, Model: m")
    assert bad_hash.model_hash is None and "not hexadecimal" in bad_hash.warnings[0]


def test_a1111_png_names_the_registered_checkpoint(hub_home, tmp_path):
    path = tmp_path / "a1111.png"
    path.write_bytes(zoo_png("flat-base", 3, a1111_info()))  # pixels of flat-base, hash of ink
    entry = identify_json(hub_home, path)
    assert entry["prompt_source"] == "embedded"
    assert entry["prompt"].startswith("two red cats in a forest at night")
    assert entry["embedded"]["source"] == "a1111" and entry["embedded"]["model_hash"] == HASH
    first = entry["results"][0]
    assert first["model"] == "ink-base" and first["exact_match"] is True and first["rank"] == 1
    assert not any(r["exact_match"] for r in entry["results"][1:])
    text = run_gmi("identify", str(path), home=hub_home).stdout
    assert "prompt embedded in the image:" in text and "exact (checkpoint hash)" in text


def test_unknown_hash_and_full_sha256(hub_home, tmp_path, submissions):
    other = A1111.replace(HASH, "0123456789")
    path = tmp_path / "other.png"
    path.write_bytes(zoo_png("flat-base", 3, a1111_info(other)))
    entry = identify_json(hub_home, path)
    assert not any(r["exact_match"] for r in entry["results"])
    assert entry["results"][0]["model"] == "flat-base"  # ranked from the pixels
    sha = hashlib.sha256(b"some checkpoint").hexdigest()
    done = run_gmi(
        "submit",
        "sha-model",
        "--images",
        str(submissions["flat-base"]),
        "--quiet",
        "--model-hash",
        sha,
        home=hub_home,
    )
    assert done.returncode == 0, done.stderr
    registry = Hub(hub_home).registry()
    try:  # a full sha256 is stored with its 10-hex A1111 form, which images embed
        assert registry.models_with_hash(sha[:10]) == ["sha-model"]
        assert registry.models_with_hash(sha.upper()) == ["sha-model"]
    finally:
        assert run_gmi("remove", "sha-model", home=hub_home).returncode == 0
    assert registry.models_with_hash(sha[:10]) == []


def test_comfyui_prompt_and_workflow(hub_home, tmp_path):
    path = tmp_path / "comfy.png"
    path.write_bytes(zoo_png("neon-base", 5, comfy_info(json.dumps(COMFY_GRAPH))))
    entry = identify_json(hub_home, path)
    assert entry["prompt_source"] == "embedded" and entry["prompt"] == "one castle at dawn"
    assert entry["embedded"] == {
        "writer": "comfyui",
        "source": "comfyui",
        "prompt": "one castle at dawn",
        "negative_prompt": "ugly, watermark",
        "model": "ink-v1.safetensors",
        "models": [{"name": "ink-v1.safetensors", "role": "checkpoint", "hashes": {}}],
        "loras": [],
        "container": "png:prompt",
    }
    workflow = {"nodes": [{"type": "CLIPTextEncode", "widgets_values": ["a ship at sea"]}]}
    only_workflow = tmp_path / "workflow.png"
    only_workflow.write_bytes(zoo_png("neon-base", 5, comfy_info(None, json.dumps(workflow))))
    assert identify_json(hub_home, only_workflow)["prompt"] == "a ship at sea"


@pytest.mark.parametrize(
    "info, warning",
    [
        (comfy_info("{not json"), "not valid JSON"),
        (comfy_info("[" * 100_000 + "]" * 100_000), "nested too deeply"),
        (a1111_info("x" * 70_000), "longer than"),
        (comfy_info(json.dumps([1, 2, 3])), "not a node graph"),
    ],
)
def test_malformed_metadata_is_a_warning_not_a_failure(hub_home, tmp_path, info, warning):
    path = tmp_path / "bad.png"
    path.write_bytes(zoo_png("photo-base", 2, info))
    entry = identify_json(hub_home, path)
    assert entry["prompt_source"] == "interrogated"
    assert any(warning in w for w in entry["warnings"])
    assert entry["results"][0]["model"] == "photo-base"


def test_exif_user_comment_in_a_jpeg(tmp_path):
    """A1111 saves JPEG/WebP parameters as EXIF UserComment: 'UNICODE\\0' + UTF-16 text."""
    data, _ = query_upload("ink-base", 1)
    image = Image.open(io.BytesIO(data)).convert("RGB")
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\x00" + A1111.encode("utf-16-be")
    path = tmp_path / "exif.jpg"
    image.save(path, exif=exif.tobytes(), quality=90)
    found = read_embedded(open_image(path))
    assert found.writer == "a1111" and found.container == "exif:UserComment"
    assert found.model_hash == HASH
    assert found.prompt.startswith("two red cats")
    assert decode_user_comment(b"UNICODE\x00" + "hi".encode("utf-16-le")) == "hi"
    assert decode_user_comment(b"ASCII\x00\x00\x00hello") == "hello"


def test_stated_prompt_wins_over_embedded(hub_home, tmp_path):
    path = tmp_path / "a1111.png"
    path.write_bytes(zoo_png("flat-base", 3, a1111_info()))
    entry = identify_json(hub_home, path, "--prompt", "a quiet harbour")
    assert entry["prompt_source"] == "stated" and entry["prompt"] == "a quiet harbour"
    assert entry["results"][0]["exact_match"] is True  # the hash still names the checkpoint


def test_warm_process_with_mixed_sources(hub_home, tmp_path, query_images):
    """Embedded, guessed and stated prompts in one together-requirement and one by one."""
    embedded = tmp_path / "e.png"
    embedded.write_bytes(zoo_png("ink-base", 4, comfy_info(json.dumps(COMFY_GRAPH))))
    hub = Hub(hub_home)
    together = hub.identify([embedded, query_images["ink-base"]], together=True, top=2)
    assert together[0].prompt_source == "interrogated"  # one of the two was guessed
    assert together[0].prompt.startswith("one castle at dawn | ")
    each = hub.identify([embedded, query_images["ink-base"]], top=2)
    assert [r.prompt_source for r in each] == ["embedded", "interrogated"]


# -- submit papercuts -------------------------------------------------------------------------
def test_replace_keeps_description_and_hashes(hub_home, submissions):
    def replace_neon(*extra: str):
        folder = str(submissions["neon-base"])
        done = run_gmi(
            "submit", "neon-base", "--images", folder, "--replace", *extra, home=hub_home
        )
        assert done.returncode == 0, done.stderr

    replace_neon("--quiet", "--description", "glowing signs")
    replace_neon("--quiet")
    info = json.loads(run_gmi("info", "neon-base", "--json", home=hub_home).stdout)
    assert info["description"] == "glowing signs"
    ink = json.loads(run_gmi("info", "ink-base", "--json", "--home", str(hub_home)).stdout)
    assert ink["model_hashes"] == [HASH]  # --home after the subcommand works too


def test_bad_model_hash_is_refused_before_anything_is_written(tmp_path, submissions):
    home = tmp_path / "hub"
    done = run_gmi(
        "submit",
        "x",
        "--images",
        str(submissions["flat-base"]),
        "--model-hash",
        "deadbeef1",  # hex of no hash's length (a file name would be accepted as an alias)
        home=home,
    )
    assert done.returncode == 2 and "not a checkpoint identity" in done.stderr
    assert "Traceback" not in done.stderr and tree_digest(home) == "absent"
