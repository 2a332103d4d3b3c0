"""Generation metadata that Stable Diffusion front-ends embed in the images they save.

Users' example images often say how they were made. Three writers cover most of them:

- AUTOMATIC1111 / Forge (and tools copying them): a PNG text chunk `parameters`:

      <prompt, possibly several lines>
      Negative prompt: <negative prompt>
      Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512, Model hash: 6ce0161689,
      Model: v1-5-pruned-emaonly, Version: v1.10.1

  For JPEG/WebP they put the same text in the EXIF UserComment (8-byte charset prefix, then
  the text; "UNICODE" means UTF-16).
- ComfyUI: PNG text chunks `prompt` (the executed graph: node id -> class_type + inputs) and
  `workflow` (the editor's graph: nodes with widgets_values).

The text is untrusted input: sizes are capped, JSON nesting is bounded, and anything malformed
is reported as a warning and ignored (the image is still identified from its pixels). Nothing
here ever fails an identification.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

MAX_TEXT_CHARS = 64 * 1024  # an A1111 parameters block is a few KB
MAX_JSON_CHARS = 2 * 1024 * 1024  # ComfyUI graphs are larger, but bounded
MAX_JSON_DEPTH = 64
MAX_PROMPT_CHARS = 2000  # the same cap a stated prompt has (gmi.imagefolder)
EXIF_IFD = 0x8769
USER_COMMENT = 0x9286
HASH_PATTERN = re.compile(r"[0-9a-fA-F]{8,64}")

# "Key: value" pairs of A1111's last line; a value is either a quoted string (which may hold
# commas, e.g. `Lora hashes: "a: 1, b: 2"`) or runs to the next comma.
_PARAM = re.compile(r'\s*([A-Za-z][\w \-/]*):\s*("(?:\\.|[^\\"])*"|[^,]*)(?:,|$)')


@dataclass(frozen=True)
class Embedded:
    """What an image says about its own generation (all fields optional)."""

    source: str = ""  # "a1111" | "comfyui" | "exif" | "" (nothing found)
    prompt: str | None = None
    negative_prompt: str | None = None
    model_hash: str | None = None  # lower-case hex as written (A1111: 10 hex, older: 8)
    model: str | None = None  # the checkpoint's name as the front-end wrote it
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"source": self.source}
        for key in ("prompt", "negative_prompt", "model_hash", "model"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


def read_embedded(image: Image.Image, label: str = "image") -> Embedded:
    """The generation metadata embedded in a decoded image (its `info`), or an empty one."""
    info = image.info or {}
    warnings: list[str] = []
    text = _text_chunk(info, "parameters", MAX_TEXT_CHARS, label, warnings)
    if text is not None:
        return _with_warnings(parse_a1111(text, "a1111"), warnings)
    graph = _json_chunk(info, "prompt", label, warnings)
    if graph is not None:
        found = parse_comfyui_prompt(graph, label)
        if found.prompt is not None or found.model is not None:
            return _with_warnings(found, warnings)
        warnings += found.warnings
    workflow = _json_chunk(info, "workflow", label, warnings)
    if workflow is not None:
        found = parse_comfyui_workflow(workflow, label)
        if found.prompt is not None:
            return _with_warnings(found, warnings)
        warnings += found.warnings
    comment = _exif_user_comment(info, label, warnings)
    if comment:
        return _with_warnings(parse_a1111(comment, "exif"), warnings)
    return Embedded(warnings=warnings)


def _with_warnings(found: Embedded, warnings: list[str]) -> Embedded:
    return Embedded(**{**found.__dict__, "warnings": [*warnings, *found.warnings]})


# -- AUTOMATIC1111 ---------------------------------------------------------------------------
def parse_a1111(text: str, source: str = "a1111") -> Embedded:
    """Split an A1111 parameters block into prompt, negative prompt and the key-value line."""
    lines = text.strip().replace("\r\n", "\n").split("\n")
    params: dict[str, str] = {}
    if lines and len(_PARAM.findall(lines[-1])) >= 3:  # the settings line ("Steps: ..., ...")
        for key, value in _PARAM.findall(lines.pop()):
            params[key.strip()] = _unquote(value.strip())
    prompt_lines: list[str] = []
    negative_lines: list[str] = []
    for line in lines:
        if line.startswith("Negative prompt:"):
            negative_lines.append(line.removeprefix("Negative prompt:").strip())
        elif negative_lines:
            negative_lines.append(line)
        else:
            prompt_lines.append(line)
    prompt = "\n".join(prompt_lines).strip() or None
    negative = "\n".join(negative_lines).strip() or None
    warnings = []
    if not params and prompt is None:
        warnings.append(f"embedded {source} parameters hold no prompt; ignored")
    model_hash = params.get("Model hash")
    if model_hash is not None and not HASH_PATTERN.fullmatch(model_hash):
        warnings.append(f"embedded model hash {model_hash[:80]!r} is not hexadecimal; ignored")
        model_hash = None
    return Embedded(
        source=source if (prompt or params) else "",
        prompt=_cap(prompt),
        negative_prompt=_cap(negative),
        model_hash=model_hash.lower() if model_hash else None,
        model=params.get("Model") or None,
        warnings=warnings,
    )


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            return str(json.loads(value))
        except ValueError:
            return value[1:-1]
    return value


def _cap(text: str | None) -> str | None:
    return None if text is None else text[:MAX_PROMPT_CHARS]


# -- ComfyUI ----------------------------------------------------------------------------------
def parse_comfyui_prompt(graph: Any, label: str = "image") -> Embedded:
    """ComfyUI's executed graph: follow the sampler's `positive` / `negative` links to their
    text-encoder nodes; the checkpoint loader names the model file."""
    if not isinstance(graph, dict):
        return Embedded(warnings=[f"{label}: embedded ComfyUI prompt is not a node graph; ignored"])
    nodes = {str(k): v for k, v in graph.items() if isinstance(v, dict)}

    def text_of(link: Any) -> str | None:
        if isinstance(link, list) and link and str(link[0]) in nodes:
            inputs = nodes[str(link[0])].get("inputs") or {}
            text = inputs.get("text") if isinstance(inputs, dict) else None
            return text if isinstance(text, str) else None
        return None

    prompt = negative = model = None
    for node in nodes.values():
        inputs = node.get("inputs") if isinstance(node.get("inputs"), dict) else {}
        kind = str(node.get("class_type", ""))
        if "Sampler" in kind and prompt is None:
            prompt = text_of(inputs.get("positive"))
            negative = text_of(inputs.get("negative"))
        if kind.startswith("CheckpointLoader") and isinstance(inputs.get("ckpt_name"), str):
            model = inputs["ckpt_name"]
    if prompt is None:  # no sampler: the first text encoder's text
        for node in nodes.values():
            inputs = node.get("inputs") if isinstance(node.get("inputs"), dict) else {}
            if "TextEncode" in str(node.get("class_type", "")) and isinstance(
                inputs.get("text"), str
            ):
                prompt = inputs["text"]
                break
    return Embedded(
        source="comfyui" if (prompt or model) else "",
        prompt=_cap(prompt.strip() if prompt else None) or None,
        negative_prompt=_cap(negative.strip() if negative else None) or None,
        model=model,
    )


def parse_comfyui_workflow(workflow: Any, label: str = "image") -> Embedded:
    """ComfyUI's editor graph (when the executed one is missing): the first text-encoder
    node's widget text."""
    nodes = workflow.get("nodes") if isinstance(workflow, dict) else None
    if not isinstance(nodes, list):
        return Embedded(warnings=[f"{label}: embedded ComfyUI workflow has no node list; ignored"])
    for node in nodes:
        if not isinstance(node, dict) or "TextEncode" not in str(node.get("type", "")):
            continue
        values = node.get("widgets_values")
        if isinstance(values, list) and values and isinstance(values[0], str) and values[0]:
            return Embedded(source="comfyui", prompt=_cap(values[0].strip()))
    return Embedded()


# -- reading the containers, defensively -----------------------------------------------------
def _text_chunk(info: dict, key: str, limit: int, label: str, warnings: list[str]) -> str | None:
    value = info.get(key)
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if not isinstance(value, str):
        warnings.append(f"{label}: embedded {key!r} is not text; ignored")
        return None
    if len(value) > limit:
        warnings.append(f"{label}: embedded {key!r} is longer than {limit} characters; ignored")
        return None
    return value


def _json_chunk(info: dict, key: str, label: str, warnings: list[str]) -> Any:
    text = _text_chunk(info, key, MAX_JSON_CHARS, label, warnings)
    if text is None:
        return None
    if _nesting_depth(text) > MAX_JSON_DEPTH:
        warnings.append(f"{label}: embedded {key!r} JSON is nested too deeply; ignored")
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        warnings.append(f"{label}: embedded {key!r} is not valid JSON; ignored")
        return None


def _nesting_depth(text: str) -> int:
    """Bracket depth, counted without parsing (strings may hold brackets: an upper bound that
    only matters for documents nested far beyond any real graph)."""
    depth = peak = 0
    for char in text:
        if char in "[{":
            depth += 1
            peak = max(peak, depth)
        elif char in "]}":
            depth -= 1
    return peak


def _exif_user_comment(info: dict, label: str, warnings: list[str]) -> str | None:
    raw = info.get("exif")
    if not raw:
        return None
    try:
        exif = Image.Exif()
        exif.load(raw)
        comment = exif.get_ifd(EXIF_IFD).get(USER_COMMENT)
    except Exception:
        warnings.append(f"{label}: unreadable EXIF block; ignored")
        return None
    if comment is None:
        return None
    text = comment if isinstance(comment, str) else decode_user_comment(bytes(comment))
    text = text.strip("\x00").strip()
    if len(text) > MAX_TEXT_CHARS:
        warnings.append(f"{label}: EXIF UserComment longer than {MAX_TEXT_CHARS} characters")
        return None
    return text or None


def decode_user_comment(data: bytes) -> str:
    """EXIF UserComment: 8 bytes naming the charset, then the text. UTF-16's byte order is not
    recorded, so it is inferred (ASCII-heavy text has its zero bytes on one side)."""
    prefix, body = data[:8], data[8:]
    if prefix.startswith(b"UNICODE"):
        even_zeros = body[0::2].count(0)
        odd_zeros = body[1::2].count(0)
        encoding = "utf-16-be" if even_zeros >= odd_zeros else "utf-16-le"
        if body[:2] in (b"\xfe\xff", b"\xff\xfe"):
            encoding = "utf-16"
        return body.decode(encoding, errors="replace")
    if prefix.startswith(b"ASCII") or prefix == b"\x00" * 8:
        return body.decode("utf-8", errors="replace")
    return data.decode("utf-8", errors="replace")
