"""A checkpoint named by any of the ecosystem's identities finds its model: AutoV1/V2/V3,
sha256 (0x too), blake3, a Civitai AIR (or its version id), a file name (a weaker, named
match), through `gmi submit --model-hash` and images written the way each front-end names it."""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np
import pytest
from metadata_files import CIVITAI_ORCHESTRATION, SWARM, png, unicode_comment, with_exif
from PIL import Image

from conftest import hub_copy, run_gmi
from gmi.errors import InvalidInputError
from gmi.model_hash import checkpoint_hashes, file_identities, parse_model_id
from gmi.zoo.export import query_upload

SHA = hashlib.sha256(b"flat checkpoint").hexdigest()
BLAKE = hashlib.sha256(b"flat blake").hexdigest()  # any 64 hex: what InvokeAI would write
AIR = "urn:air:sdxl:checkpoint:civitai:101055@128078"
LORA_V3 = "7c6bad76eb54"


@pytest.mark.parametrize(
    "value, kind, stored",
    [
        ("1D44365e", "autov1", "1d44365e"),
        ("C0D1994C73", "autov2", "c0d1994c73"),
        ("7c6bad76eb54", "autov3", "7c6bad76eb54"),
        (SHA.upper(), "sha256", SHA),
        ("0x" + SHA, "sha256", SHA),
        ("sha256:" + SHA, "sha256", SHA),
        ("blake3:" + BLAKE, "blake3", "blake3:" + BLAKE),
        (AIR.upper(), "air", AIR),
        ("models/SDXL/juggernautXL_v9.safetensors", "file", "file:juggernautxl_v9"),
    ],
)
def test_every_identity_kind_is_accepted(value, kind, stored):
    identity = parse_model_id(value)
    assert identity.kind == kind and identity.registry_keys()[0] == stored


def test_air_is_also_stored_under_its_civitai_version():
    assert parse_model_id(AIR).registry_keys() == [AIR, "civitai:128078"]
    assert parse_model_id(SHA).registry_keys() == [SHA, SHA[:10]]


@pytest.mark.parametrize(
    "value", ["", "deadbeef1", "blake3:xyz", "urn:air:bad", "a\x00b", "x" * 400, "abc<>?"]
)
def test_no_identity_is_refused_with_one_line(value):
    with pytest.raises(InvalidInputError, match="not a checkpoint identity"):
        parse_model_id(value)


def test_a_local_checkpoint_gets_every_hash(tmp_path):
    """sha256 and AutoV2, AutoV1 (64 KiB at 1 MiB), AutoV3 (tensor data of a .safetensors),
    blake3 and the file name, each computed here independently of gmi."""
    from blake3 import blake3
    from safetensors.numpy import save_file

    path = tmp_path / "myModel_v1.safetensors"
    save_file({"w": np.arange(300_000, dtype=np.float32)}, str(path))
    data = path.read_bytes()
    header = 8 + int.from_bytes(data[:8], "little")
    got = file_identities(path)
    assert got == [
        hashlib.sha256(data).hexdigest(),
        hashlib.sha256(data[0x100000:0x110000]).hexdigest()[:8],
        hashlib.sha256(data[header:]).hexdigest()[:12],
        f"blake3:{blake3(data).hexdigest()}",
        "myModel_v1.safetensors",
    ]
    assert checkpoint_hashes(tmp_path) == got  # a diffusers folder's top-level single file
    assert all(parse_model_id(v) for v in got)


# -- end to end: gmi submit --model-hash, gmi identify ------------------------------------
@pytest.fixture(scope="module")
def hashed_hub(tmp_path_factory, pristine_hub, submissions):
    """flat-base re-submitted through the CLI with four kinds of identity (the contract); the
    others through the Python API (the same submit path, faster)."""
    from gmi.hub import Hub

    home = hub_copy(pristine_hub, tmp_path_factory.mktemp("ids") / "hub")
    flat = [SHA, "blake3:" + BLAKE, AIR, "flatStyle_v2.safetensors"]
    args = [x for value in flat for x in ("--model-hash", value)]
    done = run_gmi(
        "submit", "flat-base", "--images", str(submissions["flat-base"]), "--replace",
        "--quiet", *args, home=home,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    hub = Hub(home)
    hub.submit_folder("ink-base", submissions["ink-base"], replace=True,
                      model_hashes=["c0ffee0001"], progress=False)  # fmt: skip
    # a LoRA the hub lists as a model
    hub.submit_folder("photo-base", submissions["photo-base"], replace=True,
                      model_hashes=[LORA_V3, "add_detail.safetensors"], progress=False)  # fmt: skip
    return home


def test_images_naming_a_model_any_way_find_it(hashed_hub, tmp_path):
    a1111 = "a flat scene\nSteps: 20, Seed: 1, Model: whatever, Model hash: {h}"
    invoke = {
        "positive_prompt": "a flat scene",
        "model": {"name": "renamed", "hash": "blake3:" + BLAKE},
    }
    civitai_text = (
        "a flat scene\nSteps: 20, Seed: 1, "
        'Civitai resources: [{"type":"checkpoint","modelVersionId":128078}]'
    )
    swarm = json.loads(json.dumps(SWARM))
    swarm["sui_models"][0]["hash"] = "0x" + SHA
    comfy_named = {
        "4": {
            "class_type": "CheckpointLoaderSimple",
            "inputs": {"ckpt_name": "styles/flatStyle_v2.safetensors"},
        },
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a flat scene", "clip": ["4", 1]}},
        "3": {"class_type": "KSampler", "inputs": {"model": ["4", 0], "positive": ["6", 0]}},
    }
    cases = {  # file -> (bytes, model expected first, exact, named)
        "autov2.png": (png([("parameters", a1111.format(h=SHA[:10]))]), "flat-base", True),
        "sha.png": (png([("parameters", a1111.format(h=SHA))]), "flat-base", True),
        "blake3.png": (png([("invokeai_metadata", json.dumps(invoke))]), "flat-base", True),
        "air.jpg": (
            with_exif("JPEG", user_comment=unicode_comment(json.dumps(CIVITAI_ORCHESTRATION))),
            "flat-base", True,
        ),
        "version.png": (png([("parameters", civitai_text)]), "flat-base", True),
        "swarm.webp": (
            with_exif("WEBP", user_comment=unicode_comment(json.dumps(swarm))), "flat-base", True,
        ),
        "named.png": (png([("prompt", json.dumps(comfy_named))]), "flat-base", False),
    }  # fmt: skip
    paths = []
    for name, (data, _, _) in cases.items():
        (tmp_path / name).write_bytes(_rebased(data, "ink-base"))
        paths.append(str(tmp_path / name))
    done = run_gmi("identify", *paths, "--json", "--top", "3", home=hashed_hub)
    assert done.returncode == 0, done.stderr
    for entry, (name, (_, model, exact)) in zip(
        json.loads(done.stdout), cases.items(), strict=True
    ):
        first = entry["results"][0]
        assert first["model"] == model, name
        assert first["exact_match"] is exact, name
        assert first.get("named_match", False) is (not exact), name
        assert entry["prompt_source"] == "embedded", name
    text = run_gmi("identify", paths[-1], home=hashed_hub).stdout
    assert "named (checkpoint file name)" in text and "ComfyUI metadata: made with" in text


def test_a_hash_contradicting_the_file_name_wins_and_loras_are_listed(hashed_hub, tmp_path):
    contradicted = "a scene\nSteps: 20, Seed: 1, Model: flatStyle_v2, Model hash: c0ffee0001"
    unknown = "a scene\nSteps: 20, Seed: 1, Model: flatStyle_v2, Model hash: 0123456789"
    lora = "a scene <lora:add_detail:0.6>\nSteps: 20, Seed: 1, Model: x, " + (
        f'Lora hashes: "add_detail: {LORA_V3}"'
    )
    paths = []
    for name, text in (("c.png", contradicted), ("u.png", unknown), ("l.png", lora)):
        (tmp_path / name).write_bytes(_rebased(png([("parameters", text)]), "neon-base"))
        paths.append(str(tmp_path / name))
    done = run_gmi("identify", *paths, "--json", "--top", "3", home=hashed_hub)
    assert done.returncode == 0, done.stderr
    by_hash, by_unknown_hash, with_lora = json.loads(done.stdout)
    assert by_hash["results"][0]["model"] == "ink-base"  # the hash names ink-base exactly
    assert by_hash["results"][0]["exact_match"] is True
    flat = [r for r in by_unknown_hash["results"] if r["model"] == "flat-base"]
    assert not by_unknown_hash["results"][0]["exact_match"]
    # flat-base was submitted with hashes, none of them 0123456789: the name is contradicted
    assert (
        not flat
        or flat[0]["rank"] > 1
        or flat[0]["distance"] <= min(r["distance"] for r in by_unknown_hash["results"])
    )
    assert with_lora["resources"] == [
        {"model": "photo-base", "name": "add_detail", "role": "lora", "match": "exact",
         "weight": 0.6}
    ]  # fmt: skip


def _rebased(data: bytes, model: str) -> bytes:
    """The same metadata on a zoo model's pixels (so the ranking has something to rank)."""
    from gmi.metadata.containers import PNG_SIGNATURE

    raw, _ = query_upload(model, 3)
    pixels = Image.open(io.BytesIO(raw)).convert("RGB")
    source = Image.open(io.BytesIO(data))
    buffer = io.BytesIO()
    if data.startswith(PNG_SIGNATURE):
        from PIL import PngImagePlugin

        info = PngImagePlugin.PngInfo()
        for key, value in source.text.items():
            info.add_text(key, value)
        pixels.save(buffer, "PNG", pnginfo=info)
    else:
        pixels.save(buffer, source.format, exif=source.info.get("exif", b""), quality=92)
    return buffer.getvalue()
