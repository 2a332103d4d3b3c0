"""The front-ends whose generation metadata gmi reads: one module per format family, listed
ONCE here, in the order they are tried (the most specific first: several write a `parameters`
chunk or an EXIF UserComment, told apart by what is inside).

A reader takes the file's Entries (gmi.metadata.containers) and returns an Embedded record,
None when the format is not its, or raises ValueError with one line when the format is its but
the document is broken (a warning; the prompt is then interrogated). Adding a writer is one
module and one line in READERS.
"""

from __future__ import annotations

from collections.abc import Callable

from gmi.metadata.containers import Entries
from gmi.metadata.record import Embedded
from gmi.metadata.writers import a1111, comfyui, fooocus, invokeai, json_apps, novelai, swarmui

Reader = Callable[[Entries], Embedded | None]
READERS: tuple[tuple[str, Reader], ...] = (
    ("novelai", novelai.read),
    ("invokeai", invokeai.read),
    ("swarmui", swarmui.read),
    ("fooocus", fooocus.read),
    ("json-apps", json_apps.read),  # Stability Matrix, TensorArt, Easy Diffusion, HF Spaces
    ("a1111", a1111.read),  # and Forge, SD.Next, Civitai text, ComfyUI's A1111 savers
    ("comfyui", comfyui.read),
)
# every value Embedded.writer can take (docs/identify-output.md lists them)
WRITERS: tuple[str, ...] = tuple(
    dict.fromkeys(
        name
        for module in (novelai, invokeai, swarmui, json_apps, fooocus, a1111, comfyui)
        for name in module.NAMES
    )
)
