"""Overheads of the real-model paths, measured with tiny random models (CPU, no network).

    .venv/bin/python benchmarks/real_models.py

1. Time per image of `submit --diffusers` on a tiny Stable Diffusion pipeline (2 steps): the
   cost that is gmi's own (pipeline calls, PNG writing, resumable metadata, encoding), since the
   tiny UNet itself costs almost nothing.
2. Forward passes per query for the `paper` configuration (CLIP encoder + CLIP-Interrogator),
   counted with forward hooks on the tiny CLIP and BLIP towers.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from tiny_hf import make_blip, make_clip, make_stable_diffusion

from gmi.generators import load_generator
from gmi.generators.submission import generate_imagefolder
from gmi.hub import Hub
from gmi.zoo.export import query_upload, spec_images


def main() -> None:
    report = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sd = make_stable_diffusion(root / "sd")
        generator = load_generator(f"diffusers:{sd}", device="cpu", steps=2)
        prompts = [f"prompt number {i}" for i in range(16)]
        started = time.perf_counter()
        _, _, made = generate_imagefolder(generator, prompts, root / "out", 2, progress=False)
        elapsed = time.perf_counter() - started
        report["tiny_sd_images"] = made
        report["tiny_sd_ms_per_image_generate_and_save"] = round(1000 * elapsed / made, 2)
        hub = Hub(
            root / "hub",
            encoder=f"clip:{make_clip(root / 'clip')}",
            interrogator=f"clip-interrogator:{make_blip(root / 'blip')}",
            scoring="rkme",
        )
        started = time.perf_counter()
        record, _ = hub.submit_generated(
            "tiny",
            generator,
            prompts,
            images_per_prompt=2,
            keep_images=root / "out2",
            progress=False,
        )
        report["tiny_sd_ms_per_image_submit_total"] = round(
            1000 * (time.perf_counter() - started) / record.n_images, 2
        )
        for name in ("flat-base", "ink-base"):
            images, texts = spec_images(name)
            hub.submit_images(name, images[:8], texts[:8], progress=False)
        query = root / "q.jpg"
        query.write_bytes(query_upload("ink-base", 0)[0])
        hub.identify([query])  # warm: loads BLIP, embeds the modifier lists once
        from gmi.encoders import load_encoder
        from gmi.interrogators import load_interrogator

        clip = load_encoder(hub.settings().encoder).model
        blip = load_interrogator(hub.settings().interrogator).captioner.model
        counts = {"clip_vision": 0, "clip_text": 0, "blip_vision": 0, "blip_text_decoder": 0}

        def hook(key):
            def count(*_):
                counts[key] += 1

            return count

        clip.vision_model.register_forward_hook(hook("clip_vision"))
        clip.text_model.register_forward_hook(hook("clip_text"))
        blip.vision_model.register_forward_hook(hook("blip_vision"))
        blip.text_decoder.register_forward_hook(hook("blip_text_decoder"))
        hub.identify([query])
        report["paper_forward_passes_per_query"] = counts
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
