"""Every front-end's metadata layout, read by gmi.metadata: real files first (byte-exact from
sd-parsers' and ComfyUI's repositories, tests/fixtures/real-metadata), then files written the
way each other writer's own code writes them. A document no reader knows is never a prompt."""

from __future__ import annotations

import json
import time
import zlib
from pathlib import Path

import pytest
from metadata_files import (
    A1111_FULL,
    BLAKE,
    CIVITAI_ORCHESTRATION,
    CIVITAI_TEXT,
    COMFY_GRAPH,
    NOVELAI_V4_COMMENT,
    SHA,
    SWARM,
    pixels,
    png,
    stealth_png,
    unicode_comment,
    with_exif,
)
from PIL import Image

from gmi.images import open_image
from gmi.metadata import read_embedded
from gmi.metadata.containers import decode_user_comment, read_entries

REAL = Path(__file__).parent / "fixtures" / "real-metadata"
EXPECTED = {
    k: v for k, v in json.loads((REAL / "expected.json").read_text()).items() if k[0] != "_"
}


def read(data: bytes):
    return read_embedded(open_image(data), "upload")


# -- real files ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_file(name):
    want = EXPECTED[name]
    found = read_embedded(open_image(REAL / name), name)
    assert found.writer == want["writer"]
    if "prompt" in want:
        assert found.prompt == want["prompt"]
    else:
        assert found.prompt.startswith(want["prompt_starts"])
    if "negative" in want:
        assert found.negative_prompt == want["negative"]
    assert [m.name for m in found.models] == want["models"]
    if found.models:
        assert found.models[0].to_json()["hashes"] == want["hashes"]
        assert found.models[0].role == "checkpoint"
    for lora in want.get("loras", []):
        assert lora in [m.name for m in found.loras]
    assert not found.warnings


def test_sdxl_base_and_refiner_graph_names_the_base():
    found = read(Path(REAL / "comfyui-examples/sdxl/sdxl_simple_example.png").read_bytes())
    assert [(m.name, m.role) for m in found.models] == [
        ("sd_xl_base_1.0.safetensors", "checkpoint"),
        ("sd_xl_refiner_1.0.safetensors", "refiner"),
    ]


def test_reading_metadata_of_a_2mb_png_takes_under_5ms():
    data = png(
        [("workflow", json.dumps(COMFY_GRAPH) * 400), ("prompt", json.dumps(COMFY_GRAPH))],
        image=pixels(1, 840, "RGBA"),
    )
    assert len(data) > 2 * 2**20
    image = Image.open(__import__("io").BytesIO(data))
    image.load()
    from gmi.metadata.stealth import read_stealth

    best = float("inf")
    for _ in range(20):
        started = time.perf_counter()
        entries = read_entries(data, image)
        read_stealth(image)
        probe = Image.new("RGB", (1, 1))
        probe.info["gmi.metadata"] = entries
        assert read_embedded(probe).writer == "comfyui"
        best = min(best, time.perf_counter() - started)
    assert best < 0.005, f"{best * 1000:.2f} ms"


# -- writers without a real sample in the fixtures ------------------------------------------
def test_swarmui_png_jpeg_and_webp():
    document = json.dumps(SWARM)
    for data in (
        png([("parameters", document)]),
        with_exif("JPEG", user_comment=unicode_comment(document)),
        with_exif("WEBP", user_comment=unicode_comment(document, "le")),
    ):
        found = read(data)
        assert found.writer == "swarmui"
        assert found.prompt == "a red fox in snow <lora:fluffy>"
        assert found.negative_prompt == "lowres"
        assert found.models[0].name == "OfficialStableDiffusion/sd_xl_base_1.0"
        assert found.models[0].to_json()["hashes"] == {"sha256": SHA}
        assert [(lora.name, lora.weight) for lora in found.loras] == [("fluffy", 0.6)]
        assert found.loras[0].to_json()["hashes"] == {"sha256": "77" * 32}


def test_ruined_fooocus_and_fooocus_loras():
    ruined = {
        "Prompt": "an owl",
        "Negative": "",
        "steps": 30,
        "base_model_name": "sdxl_owl.safetensors",
        "base_model_hash": SHA,
        "loras": [{"name": "feathers.safetensors", "weight": 0.5}],
        "software": "RuinedFooocus",
    }
    found = read(png([("parameters", json.dumps(ruined))]))
    assert (found.writer, found.prompt, found.negative_prompt) == ("ruined-fooocus", "an owl", None)
    assert found.models[0].to_json()["hashes"] == {"sha256": SHA}
    assert found.loras[0].name == "feathers.safetensors" and found.loras[0].weight == 0.5
    fooocus = {
        "prompt": "a goldfish",
        "negative_prompt": "",
        "base_model": "juggernautXL",
        "base_model_hash": "aeb7e9e689",
        "loras": [["sd_xl_offset", 0.1, "4852686128"]],
        "version": "Fooocus v2.5.0",
    }
    found = read(with_exif("JPEG", user_comment=json.dumps(fooocus).encode()))
    assert found.writer == "fooocus" and found.prompt == "a goldfish"
    assert found.loras[0].to_json()["hashes"] == {"autov2": "4852686128"}


def test_hugging_face_space_json():
    document = {
        "prompt": "a teapot, studio light",
        "negative_prompt": "lowres",
        "resolution": "1024 x 1024",
        "guidance_scale": 7,
        "num_inference_steps": 28,
        "seed": 1,
        "Model": "Animagine XL 4.0",
        "Model hash": SHA,
    }
    found = read(png([("parameters", json.dumps(document))]))
    assert found.writer == "hf-space" and found.prompt == "a teapot, studio light"
    assert found.models[0].name == "Animagine XL 4.0"
    assert found.models[0].to_json()["hashes"] == {"sha256": SHA}


def test_invokeai_5_with_blake3_and_loras():
    meta = {
        "positive_prompt": "a misty forest",
        "negative_prompt": "people",
        "model": {
            "key": "k1",
            "hash": f"blake3:{BLAKE}",
            "name": "Juggernaut XL v9",
            "base": "sdxl",
            "type": "main",
        },
        "loras": [
            {
                "model": {
                    "key": "k2",
                    "hash": f"blake3:{'cc' * 32}",
                    "name": "moss",
                    "base": "sdxl",
                    "type": "lora",
                },
                "weight": 0.75,
            }
        ],
    }
    found = read(png([("invokeai_metadata", json.dumps(meta)), ("invokeai_graph", "{}")]))
    assert (found.writer, found.prompt, found.negative_prompt) == (
        "invokeai",
        "a misty forest",
        "people",
    )
    assert found.models[0].to_json()["hashes"] == {"blake3": BLAKE}
    assert (found.loras[0].name, found.loras[0].weight) == ("moss", 0.75)


def test_novelai_v4_png_and_webp():
    comment = json.dumps(NOVELAI_V4_COMMENT)
    found = read(
        png(
            [
                ("Title", "NovelAI generated image"),
                ("Description", "1girl, library"),
                ("Software", "NovelAI"),
                ("Source", "NovelAI Diffusion V4.5 4BDE2A90"),
                ("Comment", comment),
            ]
        )
    )
    assert found.writer == "novelai" and found.prompt == "1girl, library, warm light"
    assert found.negative_prompt == "lowres, bad anatomy"
    assert found.models[0].name == "NovelAI Diffusion V4.5"
    assert found.models[0].to_json()["hashes"] == {"novelai": "4BDE2A90"}
    webp = {
        "Description": "1girl, library",
        "Software": "NovelAI",
        "Source": "NovelAI Diffusion V4.5 4BDE2A90",
        "Comment": comment,
    }
    found = read(with_exif("WEBP", user_comment=unicode_comment(json.dumps(webp))))
    assert found.writer == "novelai" and found.prompt == "1girl, library, warm light"


def test_comfyui_jpeg_and_webp_savers():
    graph = json.dumps(COMFY_GRAPH)
    jpeg = read(with_exif("JPEG", user_comment=graph.encode("ascii")))  # no charset prefix
    webp = read(with_exif("WEBP", description='Workflow: {"nodes": []}', make=f"Prompt: {graph}"))
    wrapped = read(with_exif("JPEG", user_comment=json.dumps({"prompt": graph}).encode()))
    for found in (jpeg, webp, wrapped):
        assert found.writer == "comfyui" and found.prompt == "a lighthouse on a cliff"
        assert found.negative_prompt == "blurry"
        assert found.models[0].name == "SDXL/juggernautXL_v9.safetensors"
        assert [(m.name, m.weight) for m in found.loras] == [("add_detail.safetensors", 0.7)]


def test_comfyui_editor_workflow_only():
    workflow = {
        "nodes": [
            {"id": 4, "type": "CheckpointLoaderSimple", "widgets_values": ["dream.safetensors"]},
            {
                "id": 6,
                "type": "CLIPTextEncode",
                "widgets_values": ["bad hands"],
                "inputs": [{"name": "clip", "link": 1}],
            },
            {
                "id": 7,
                "type": "CLIPTextEncode",
                "widgets_values": ["a dragon over hills"],
                "inputs": [{"name": "clip", "link": 2}],
            },
            {
                "id": 3,
                "type": "KSampler",
                "inputs": [
                    {"name": "model", "link": 3},
                    {"name": "positive", "link": 4},
                    {"name": "negative", "link": 5},
                ],
            },
            {"id": 9, "type": "SaveImage", "inputs": [{"name": "images", "link": 6}]},
            {"id": 8, "type": "VAEDecode", "inputs": [{"name": "samples", "link": 7}]},
        ],
        "links": [
            [1, 4, 1, 6, 0, "CLIP"],
            [2, 4, 1, 7, 0, "CLIP"],
            [3, 4, 0, 3, 0, "MODEL"],
            [4, 7, 0, 3, 1, "CONDITIONING"],
            [5, 6, 0, 3, 2, "CONDITIONING"],
            [6, 8, 0, 9, 0, "IMAGE"],
            [7, 3, 0, 8, 0, "LATENT"],
        ],
    }
    found = read(png([("workflow", json.dumps(workflow))]))
    assert found.writer == "comfyui" and found.prompt == "a dragon over hills"
    assert found.negative_prompt == "bad hands"
    assert found.models[0].name == "dream.safetensors"


def test_civitai_text_and_orchestration():
    found = read(png([("parameters", CIVITAI_TEXT)]))
    assert found.writer == "civitai" and found.prompt == "a cozy cabin in the woods"
    assert found.models[0].to_json()["hashes"] == {
        "autov2": "abcdef1234",
        "civitai_version": "128078",
    }
    assert [(m.name, m.weight) for m in found.loras][-1] == ("cozy", 0.8)
    assert {"autov3": "1234567890ab"} in [m.to_json()["hashes"] for m in found.loras]
    graph = json.dumps(CIVITAI_ORCHESTRATION)
    found = read(with_exif("JPEG", user_comment=unicode_comment(graph)))
    assert found.writer == "civitai" and found.prompt == "a glass city at dusk"
    assert found.models[0].to_json()["hashes"] == {
        "air": "urn:air:sdxl:checkpoint:civitai:101055@128078"
    }
    assert "urn:air:sdxl:lora:civitai:200@300" in [
        m.to_json()["hashes"].get("air") for m in found.loras
    ]


def test_tensorart_and_stability_matrix():
    data = {
        "prompt": "neon street",
        "negativePrompt": "rain",
        "baseModel": {"modelFileName": "dreamshaper_8.safetensors", "hash": SHA.upper()},
    }
    found = read(
        png(
            [
                ("generation_data", json.dumps(data) + "\x00\x00"),
                ("prompt", json.dumps(COMFY_GRAPH)),
            ]
        )
    )
    assert (found.writer, found.prompt) == ("tensorart", "neon street")
    assert found.models[0].to_json()["hashes"] == {"sha256": SHA}
    sm = {
        "PositivePrompt": "café au lait — ☕",
        "NegativePrompt": "",
        "ModelName": "sdxl",
        "ModelHash": SHA,
    }
    found = read(
        png(
            [
                ("parameters", "café au lait — ☕\nSteps: 20, Sampler: Euler, Seed: 1".encode()),
                ("parameters-json", json.dumps(sm, ensure_ascii=False).encode()),
                ("smproj", b"{}"),
            ]
        )
    )
    assert found.writer == "stability-matrix" and found.prompt == "café au lait — ☕"


def test_a1111_family_versions_loras_and_refiner():
    found = read(png([("parameters", A1111_FULL)]))
    assert found.writer == "forge"
    assert found.prompt.startswith("masterpiece, a castle") and found.negative_prompt == (
        "lowres, bad hands"
    )
    assert [(m.name, m.role) for m in found.models] == [
        ("dreamshaperXL_v21", "checkpoint"),
        ("sd_xl_refiner_1.0", "refiner"),
    ]
    assert found.models[1].to_json()["hashes"] == {"autov2": "7440042bbd"}
    assert [(m.name, m.weight, m.to_json()["hashes"]) for m in found.loras] == [
        ("add_detail", 0.6, {"autov3": "7c6bad76eb54"}),
        ("Film Grain", 0.3, {"autov3": "0123456789ab"}),
    ]
    for version, writer in (("neo", "forge-neo"), ("v1.10.1", "a1111"), ("ComfyUI", "comfyui")):
        text = A1111_FULL.replace("f2.0.1v1.10.1-previous-633-ge2c3a4d", version)
        assert read(png([("parameters", text)])).writer == writer
    sdnext = "a bird\nSteps: 20, Seed: 1, Model: sdxl, App: SD.Next, Version: 5c0a"
    assert read(png([("parameters", sdnext)])).writer == "sdnext"


def test_containers_itxt_ztxt_utf16_and_stealth_variants():
    assert read(png([("parameters", A1111_FULL)], compressed=True)).writer == "forge"
    for order in ("be", "le"):
        comment = unicode_comment(A1111_FULL, order)
        assert read(with_exif("JPEG", user_comment=comment)).model == "dreamshaperXL_v21"
    assert decode_user_comment(b"UNICODE\x00\xff\xfeh\x00i\x00") == "hi"
    assert decode_user_comment(b"UNICODE\x00plain utf-8") == "plain utf-8"
    for channel in ("alpha", "rgb"):
        for compressed in (True, False):
            found = read(
                stealth_png(
                    "a circle\nSteps: 20, Seed: 1, Model: m", channel=channel, compressed=compressed
                )
            )
            assert (found.container, found.prompt, found.model) == ("stealth", "a circle", "m")


def test_a_huge_ztxt_workflow_is_a_warning_not_an_unreadable_image():
    """A compressed workflow inflating past PIL's 1 MB cap (issue 23, D16)."""
    import io

    info = __import__("PIL.PngImagePlugin", fromlist=["x"]).PngInfo()
    big = json.dumps({"nodes": [{"type": "Note", "widgets_values": ["x" * 3_000_000]}]})
    info.add(b"zTXt", b"workflow\x00\x00" + zlib.compress(big.encode()))
    info.add_text("parameters", "a heron\nSteps: 20, Seed: 1, Model: m")
    buffer = io.BytesIO()
    pixels().save(buffer, "PNG", pnginfo=info)
    found = read(buffer.getvalue())
    assert found.prompt == "a heron"


@pytest.mark.parametrize(
    "data",
    [
        png([("parameters", json.dumps({"some": "document", "prompt_like": "x"}))]),
        png([("parameters", '{"prompt": {"nested": "object"}}')]),
        png([("parameters", "<x:xmpmeta>stuff</x:xmpmeta>")]),
        png([("prompt", '{"1": {"no": "class_type"}}')]),
        png([("Comment", '{"prompt": "taken from a comment"}')]),
        with_exif("JPEG", user_comment=b"ASCII\x00\x00\x00Shot on a phone, 1/250s"),
        with_exif("JPEG", user_comment=unicode_comment('{"sui_image_param": "typo"}')),
    ],
    ids=["json", "nested", "xml", "graphless", "comment", "camera", "near-swarm"],
)
def test_a_document_no_reader_knows_is_never_a_prompt(data):
    found = read(data)
    assert found.prompt is None and found.writer == ""
    assert found.warnings or data[:4] != b"\x89PNG"


def test_a_pil_image_built_in_python_is_read_from_its_info():
    image = pixels()
    image.info["parameters"] = "a kite\nSteps: 20, Seed: 1, Model: kite-v1"
    assert read_embedded(image).model == "kite-v1"
