"""Image files carrying generation metadata the way each front-end writes it (the layouts its
own code writes: chunk names, EXIF tags, JSON keys), for the writers whose real files the
tests' fixtures do not include. Real files are in tests/fixtures/real-metadata/."""

from __future__ import annotations

import io
import json

import numpy as np
from PIL import Image, PngImagePlugin

SHA = "3a2b" * 16
BLAKE = "b1a3" * 16


def pixels(seed: int = 0, size: int = 64, mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(seed)
    array = rng.integers(0, 255, (size, size, len(mode)), dtype=np.uint8)
    if mode == "RGBA":
        array[..., 3] = 255
    return Image.fromarray(array, mode)


def png(
    chunks: list[tuple[str, str | bytes]],
    image: Image.Image | None = None,
    compressed: bool = False,
) -> bytes:
    """A PNG with text chunks in order; bytes values go in tEXt as they are (UTF-8 in a
    Latin-1 chunk, as some tools write)."""
    info = PngImagePlugin.PngInfo()
    for key, value in chunks:
        if isinstance(value, bytes):
            info.add(b"tEXt", key.encode("latin-1") + b"\x00" + value)
        elif compressed:
            info.add_itxt(key, value, zip=True)
        else:
            info.add_text(key, value)
    buffer = io.BytesIO()
    (image or pixels()).save(buffer, "PNG", pnginfo=info)
    return buffer.getvalue()


def with_exif(
    fmt: str,
    user_comment: bytes | None = None,
    description: str | None = None,
    make: str | None = None,
    image: Image.Image | None = None,
) -> bytes:
    """A JPEG or WebP whose EXIF holds UserComment / ImageDescription / Make."""
    exif = Image.Exif()
    if description is not None:
        exif[0x010E] = description
    if make is not None:
        exif[0x010F] = make
    if user_comment is not None:
        exif.get_ifd(0x8769)[0x9286] = user_comment
    buffer = io.BytesIO()
    (image or pixels()).save(buffer, fmt, exif=exif.tobytes(), quality=92)
    return buffer.getvalue()


def unicode_comment(text: str, order: str = "be") -> bytes:
    return b"UNICODE\x00" + text.encode(f"utf-16-{order}")


COMFY_GRAPH = {
    "4": {
        "class_type": "CheckpointLoaderSimple",
        "inputs": {"ckpt_name": "SDXL/juggernautXL_v9.safetensors"},
    },
    "10": {
        "class_type": "LoraLoader",
        "inputs": {
            "lora_name": "add_detail.safetensors",
            "strength_model": 0.7,
            "strength_clip": 1,
            "model": ["4", 0],
            "clip": ["4", 1],
        },
    },
    "6": {
        "class_type": "CLIPTextEncode",
        "inputs": {"text": "a lighthouse on a cliff", "clip": ["10", 1]},
    },
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["10", 1]}},
    "5": {
        "class_type": "EmptyLatentImage",
        "inputs": {"width": 1024, "height": 1024, "batch_size": 1},
    },
    "3": {
        "class_type": "KSampler",
        "inputs": {
            "model": ["10", 0],
            "positive": ["6", 0],
            "negative": ["7", 0],
            "latent_image": ["5", 0],
            "seed": 1,
            "steps": 20,
        },
    },
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "ComfyUI"}},
}

SWARM = {
    "sui_image_params": {
        "prompt": "a red fox in snow <lora:fluffy>",
        "negativeprompt": "lowres",
        "model": "OfficialStableDiffusion/sd_xl_base_1.0",
        "seed": 7,
        "steps": 30,
        "loras": ["fluffy"],
        "loraweights": ["0.6"],
        "swarm_version": "0.9.5.2",
    },
    "sui_extra_data": {"date": "2025-01-01"},
    "sui_models": [
        {
            "name": "OfficialStableDiffusion/sd_xl_base_1.0.safetensors",
            "param": "model",
            "hash": "0x" + SHA,
        },
        {"name": "fluffy.safetensors", "param": "loras", "hash": "0x" + "77" * 32},
    ],
}

A1111_FULL = (
    "masterpiece, a castle <lora:add_detail:0.6> <lora:Film Grain:0.3>\n"
    "Negative prompt: lowres, bad hands\n"
    "Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6, Seed: 123, "
    "Size: 832x1216, Model hash: 1a2b3c4d5e, Model: dreamshaperXL_v21, "
    'Lora hashes: "add_detail: 7c6bad76eb54, Film Grain: 0123456789ab", '
    "Refiner: sd_xl_refiner_1.0 [7440042bbd], Version: f2.0.1v1.10.1-previous-633-ge2c3a4d"
)

CIVITAI_TEXT = (
    "a cozy cabin in the woods\nNegative prompt: text\n"
    "Steps: 25, Sampler: Euler a, CFG scale: 7, Seed: 9, Size: 1024x1024, "
    'Hashes: {"model": "abcdef1234", "lora:cozy": "1234567890ab"}, '
    'Civitai resources: [{"type":"checkpoint","modelVersionId":128078,"modelName":"SDXL",'
    '"modelVersionName":"v1.0"},{"type":"lora","weight":0.8,"modelVersionId":555,'
    '"modelName":"cozy"}], Civitai metadata: {}'
)

CIVITAI_ORCHESTRATION = {
    "resource-stack": {
        "class_type": "CheckpointLoaderSimple",
        "inputs": {"ckpt_name": "urn:air:sdxl:checkpoint:civitai:101055@128078"},
    },
    "resource-stack-1": {
        "class_type": "LoraLoader",
        "inputs": {
            "lora_name": "urn:air:sdxl:lora:civitai:200@300",
            "strength_model": 0.9,
            "model": ["resource-stack", 0],
            "clip": ["resource-stack", 1],
        },
    },
    "6": {
        "class_type": "smZ CLIPTextEncode",
        "inputs": {"text": "a glass city at dusk", "clip": ["resource-stack-1", 1]},
    },
    "7": {
        "class_type": "smZ CLIPTextEncode",
        "inputs": {"text": "fog", "clip": ["resource-stack-1", 1]},
    },
    "11": {
        "class_type": "KSampler",
        "inputs": {
            "model": ["resource-stack-1", 0],
            "positive": ["6", 0],
            "negative": ["7", 0],
            "latent_image": ["12", 0],
        },
    },
    "12": {"class_type": "EmptyLatentImage", "inputs": {"width": 832, "height": 1216}},
    "extra": {
        "airs": [
            "urn:air:sdxl:checkpoint:civitai:101055@128078",
            "urn:air:sdxl:lora:civitai:200@300",
        ]
    },
    "extraMetadata": json.dumps({"prompt": "a glass city at dusk", "negativePrompt": "fog"}),
}

NOVELAI_V4_COMMENT = {
    "prompt": "1girl, library, warm light",
    "steps": 28,
    "scale": 5.0,
    "seed": 4,
    "sampler": "k_euler_ancestral",
    "uc": "lowres, bad anatomy",
    "v4_prompt": {
        "caption": {
            "base_caption": "1girl, library, warm light",
            "char_captions": [{"char_caption": "girl, red hair"}],
        }
    },
    "v4_negative_prompt": {"caption": {"base_caption": "lowres, bad anatomy"}},
}


def stealth_png(
    text: str, *, channel: str = "alpha", compressed: bool = True, size: int = 96
) -> bytes:
    """A1111 stealth pnginfo: the text in the pixels' low bits, column by column."""
    import gzip

    payload = gzip.compress(text.encode()) if compressed else text.encode()
    kind = {
        ("alpha", False): "pnginfo",
        ("alpha", True): "pngcomp",
        ("rgb", False): "rgbinfo",
        ("rgb", True): "rgbcomp",
    }[(channel, compressed)]
    signature = f"stealth_{kind}".encode()
    data = signature + (len(payload) * 8).to_bytes(4, "big") + payload
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8))
    image = pixels(3, size, "RGBA" if channel == "alpha" else "RGB")
    array = np.array(image)
    planes = array[..., 3:4] if channel == "alpha" else array[..., :3]
    flat = planes.transpose(1, 0, 2).reshape(-1).copy()  # column-major
    assert bits.size <= flat.size, "image too small for the payload"
    flat[: bits.size] = (flat[: bits.size] & 0xFE) | bits
    restored = flat.reshape(planes.shape[1], planes.shape[0], planes.shape[2]).transpose(1, 0, 2)
    if channel == "alpha":
        array[..., 3:4] = restored
    else:
        array[..., :3] = restored
    buffer = io.BytesIO()
    Image.fromarray(array, image.mode).save(buffer, "PNG")
    return buffer.getvalue()
