"""ComfyUI: the executed graph (`prompt`: node id -> {class_type, inputs}) and the editor's graph
(`workflow`: nodes with widgets_values, and links).

Where: PNG chunks `prompt` / `workflow`; the popular JPEG/WebP save nodes put the same JSON in
EXIF: UserComment (plain JSON, no charset prefix; the graph, or {"prompt", "workflow"}),
Make ("Prompt: {...}") and ImageDescription ("Workflow: {...}"). Civitai's generator writes such
a graph with AIR URNs as checkpoint names, `extra.airs` and `extraMetadata` (writer "civitai").

A graph may hold several samplers and checkpoints (SDXL base + refiner, two-pass upscales): the
model is the checkpoint that feeds the FIRST sampler of the chain that makes the saved image
(the save node's image <- VAE decode <- sampler <- latent <- ... <- first sampler); the prompt is
the text of the encoders feeding that sampler's `positive`; the other checkpoints are listed
("refiner" for the later samplers', "other" for the rest), LoRA loaders as LoRAs.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from gmi.metadata.containers import Entries
from gmi.metadata.jsontext import as_dict, label_of, load_json, parse_json
from gmi.metadata.record import Embedded, ModelRef, found, model_ref

NAMES = ("comfyui", "civitai")
PLACES = (
    "png:prompt",
    "exif:UserComment",
    "exif:Make",
    "exif:ImageDescription",
    "jpeg:comment",
)
WORKFLOW_PLACES = ("png:workflow", "exif:ImageDescription", "exif:Make", "exif:UserComment")
MAX_NODES = 5000
CHECKPOINT_INPUTS = ("ckpt_name", "unet_name", "model_name", "base_ckpt_name")
LORA_INPUTS = ("lora_name", "hypernetwork_name", "lora")
TEXT_INPUTS = ("text", "text_g", "text_l", "prompt", "string", "value", "positive", "text_positive")
LATENT_INPUTS = ("latent_image", "samples", "latent", "pixels", "image")
OUTPUT_WORDS = ("saveimage", "save image", "image save", "previewimage", "saveanimated")
# editor widgets -> executed-graph inputs, for the node types the tracer needs
WIDGETS = {
    "CheckpointLoaderSimple": ("ckpt_name",),
    "CheckpointLoader": ("config_name", "ckpt_name"),
    "UNETLoader": ("unet_name",),
    "LoraLoader": ("lora_name", "strength_model", "strength_clip"),
    "LoraLoaderModelOnly": ("lora_name", "strength_model"),
    "HypernetworkLoader": ("hypernetwork_name", "strength"),
    "CLIPTextEncode": ("text",),
}


class NotAGraph(ValueError):
    pass


def read(entries: Entries) -> Embedded | None:
    """The first node graph found; None when no place holds one."""
    problems: list[str] = []
    for key in PLACES:
        graph, workflow = _graph_at(entries.get(key), key, problems)
        if graph is None:
            continue
        if workflow is None:
            workflow = _workflow(entries)
        result = parse_graph(graph, key, workflow)
        if result is not None:
            return result
    workflow = _workflow(entries)
    if workflow is not None:
        graph = graph_from_workflow(workflow)
        if graph:
            result = parse_graph(
                graph, "png:workflow" if "png:workflow" in entries.texts else "exif"
            )
            if result is not None:
                return result
    if problems:
        raise NotAGraph(problems[0])
    return None


def _graph_at(text: str | None, key: str, problems: list[str]) -> tuple[dict | None, Any]:
    """(API graph, workflow or None) from one place's text."""
    if text is None:
        return None, None
    value, problem = parse_json(text)
    if problem is not None:
        if key == "png:prompt" and problem != "not JSON":
            problems.append(f"embedded 'prompt' is {problem}; ignored")
        return None, None
    if label_of(text) == "Workflow":
        return None, None
    if isinstance(value, dict) and "prompt" in value and not _is_graph(value):
        inner = value["prompt"]
        inner = load_json(inner) if isinstance(inner, str) else inner
        workflow = value.get("workflow")
        workflow = load_json(workflow) if isinstance(workflow, str) else workflow
        return (inner if isinstance(inner, dict) and _is_graph(inner) else None), workflow
    if isinstance(value, dict) and _is_graph(value):
        return value, None
    if key == "png:prompt":
        problems.append("embedded ComfyUI prompt is not a node graph; ignored")
    return None, None


def _is_graph(value: dict) -> bool:
    return any(isinstance(v, dict) and "class_type" in v for v in value.values())


def _workflow(entries: Entries) -> dict | None:
    for key in WORKFLOW_PLACES:
        value = load_json(entries.get(key))
        if isinstance(value, dict) and isinstance(value.get("workflow"), dict):
            value = value["workflow"]
        if isinstance(value, dict) and isinstance(value.get("nodes"), list):
            return value
    return None


# -- the graph --------------------------------------------------------------------------------
def parse_graph(graph: dict, container: str, workflow: Any = None) -> Embedded | None:
    nodes = {
        str(k): v
        for k, v in list(graph.items())[:MAX_NODES]
        if isinstance(v, dict) and isinstance(v.get("inputs", {}), dict) and "class_type" in v
    }
    if not nodes:
        return None
    tracer = Tracer(nodes)
    chain = tracer.sampler_chain()
    prompt = negative = None
    models: list[ModelRef | None] = []
    used: set[str] = set()
    if chain:
        first = chain[0]
        prompt = _joined(tracer.texts(tracer.link_of(first, "positive")))
        negative = _joined(tracer.texts(tracer.link_of(first, "negative")))
        for i, sampler in enumerate(chain):
            loader = tracer.loader_for(sampler)
            if loader is not None and loader not in used:
                used.add(loader)
                models.append(_checkpoint(nodes[loader], "checkpoint" if i == 0 else "refiner"))
    if prompt is None:  # no sampler: the first text encoder's text
        prompt = _joined(tracer.texts(tracer.first_encoder()))
    extra = as_dict(graph.get("extraMetadata"))
    if prompt is None:
        prompt = extra.get("prompt")
        negative = negative or extra.get("negativePrompt")
    for node_id, node in nodes.items():
        if node_id not in used:
            models.append(_checkpoint(node, "other" if any(models) else "checkpoint"))
    loras = [_lora(node) for node in nodes.values()]
    models.extend(_airs(graph, "checkpoint", "other"))
    loras.extend(_airs(graph, "lora", "lora"))
    if prompt is None and not any(models):
        return None
    civitai = "extra" in graph or "extraMetadata" in graph or "resource-stack" in nodes
    return found("civitai" if civitai else "comfyui", container, prompt, negative, models, loras)


def _joined(texts: list[str]) -> str | None:
    unique = [t.strip() for t in dict.fromkeys(texts) if t.strip()]
    return "\n".join(unique) or None


def _checkpoint(node: dict, role: str) -> ModelRef | None:
    inputs = node.get("inputs") or {}
    kind = str(node.get("class_type", ""))
    if "lora" in kind.lower():
        return None
    for key in CHECKPOINT_INPUTS:
        value = inputs.get(key)
        if isinstance(value, str) and ("Loader" in kind or key == "ckpt_name"):
            return model_ref(value, role=role)
    return None


def _lora(node: dict) -> ModelRef | None:
    inputs = node.get("inputs") or {}
    kind = str(node.get("class_type", ""))
    if "hypernetwork" in kind.lower():
        return model_ref(
            inputs.get("hypernetwork_name"), role="hypernetwork", weight=inputs.get("strength")
        )
    if "lora" not in kind.lower():
        return None
    name = inputs.get("lora_name")
    if isinstance(name, str):
        return model_ref(name, role="lora", weight=inputs.get("strength_model"))
    return None


def _airs(graph: dict, wanted: str, role: str) -> list[ModelRef | None]:
    """Civitai's `extra.airs`: AIR URNs of every resource, typed in the URN."""
    airs = as_dict(graph.get("extra")).get("airs")
    if not isinstance(airs, list):
        return []
    out = []
    for air in airs[:64]:
        parts = air.split(":") if isinstance(air, str) else []
        if len(parts) >= 6 and parts[3].lower() == wanted:
            out.append(model_ref(None, [air], role=role))
    return out


class Tracer:
    """Walks an executed graph's links: an input [node_id, output_slot] names its source."""

    def __init__(self, nodes: dict[str, dict]):
        self.nodes = nodes

    def inputs(self, node_id: str) -> dict:
        inputs = self.nodes.get(node_id, {}).get("inputs")
        return inputs if isinstance(inputs, dict) else {}

    def kind(self, node_id: str) -> str:
        return str(self.nodes.get(node_id, {}).get("class_type", ""))

    def link_of(self, node_id: str, key: str) -> str | None:
        value = self.inputs(node_id).get(key)
        if isinstance(value, list) and value and str(value[0]) in self.nodes:
            return str(value[0])
        return None

    def upstream(self, start: str | None, keys: tuple[str, ...] | None, stop) -> list[str]:
        """Nodes matching `stop`, breadth first from `start` along inputs named `keys` (all when
        None), not walking past a match."""
        if start is None:
            return []
        seen, queue, hits = {start}, deque([start]), []
        while queue:
            node_id = queue.popleft()
            if stop(node_id):
                hits.append(node_id)
                continue
            for key, value in self.inputs(node_id).items():
                if keys is not None and key not in keys:
                    continue
                if isinstance(value, list) and value and str(value[0]) in self.nodes:
                    source = str(value[0])
                    if source not in seen and len(seen) < MAX_NODES:
                        seen.add(source)
                        queue.append(source)
        return hits

    def is_sampler(self, node_id: str) -> bool:
        kind = self.kind(node_id)
        return (
            "Sampler" in kind
            and kind not in ("KSamplerSelect", "SamplerSelect")
            and any(k in self.inputs(node_id) for k in ("positive", "guider", "model"))
        )

    def sampler_chain(self) -> list[str]:
        """The samplers making the saved image, first to last."""
        outputs = [n for n in self.nodes if any(w in self.kind(n).lower() for w in OUTPUT_WORDS)]
        last = None
        for output in sorted(outputs, key=_node_order):
            hits = self.upstream(output, None, self.is_sampler)
            if hits:
                last = hits[0]
                break
        if last is None:
            samplers = sorted((n for n in self.nodes if self.is_sampler(n)), key=_node_order)
            if not samplers:
                return []
            last = samplers[-1]
        chain = [last]
        while len(chain) < 16:
            earlier = [
                s
                for key in LATENT_INPUTS
                for s in self.upstream(self.link_of(chain[0], key), None, self.is_sampler)
                if s not in chain
            ]
            if not earlier:
                break
            chain.insert(0, earlier[0])
        return chain

    def loader_for(self, sampler: str) -> str | None:
        """The checkpoint loader feeding a sampler's model (through LoRA loaders, model
        patches, a guider)."""
        start = self.link_of(sampler, "model") or self.link_of(sampler, "guider")
        hits = self.upstream(start, ("model", "guider", "base_model", "unet"), self._is_loader)
        return hits[0] if hits else None

    def _is_loader(self, node_id: str) -> bool:
        inputs = self.inputs(node_id)
        kind = self.kind(node_id)
        return "lora" not in kind.lower() and any(
            isinstance(inputs.get(k), str) for k in CHECKPOINT_INPUTS
        )

    def texts(self, start: str | None) -> list[str]:
        """The prompt texts of the encoders feeding a conditioning input."""
        out: list[str] = []
        for node_id in self.upstream(start, None, self._is_encoder):
            out.extend(self.text_of(node_id))
        return out

    def _is_encoder(self, node_id: str) -> bool:
        kind = self.kind(node_id)
        return "TextEncode" in kind or ("Prompt" in kind and "Styler" not in kind)

    def first_encoder(self) -> str | None:
        encoders = sorted((n for n in self.nodes if self._is_encoder(n)), key=_node_order)
        return encoders[0] if encoders else None

    def text_of(self, node_id: str, depth: int = 0) -> list[str]:
        """A node's text inputs; a linked one (a string primitive) followed a few steps."""
        out = []
        for key in TEXT_INPUTS:
            value = self.inputs(node_id).get(key)
            if isinstance(value, str):
                out.append(value)
            elif isinstance(value, list) and value and str(value[0]) in self.nodes and depth < 4:
                out.extend(self.text_of(str(value[0]), depth + 1))
            if out and key in ("text", "text_g", "prompt"):
                break
        return out


def _node_order(node_id: str) -> tuple[int, str]:
    head = node_id.split(":")[0]
    return (int(head), node_id) if head.isdigit() else (1 << 30, node_id)


# -- the editor's graph -------------------------------------------------------------------------
def graph_from_workflow(workflow: dict) -> dict[str, dict]:
    """The editor's graph as an executed one (links resolved, widgets named for the node types
    the tracer reads), for images that carry only `workflow`."""
    nodes = workflow.get("nodes")
    links = workflow.get("links")
    if not isinstance(nodes, list):
        return {}
    sources: dict[int, list] = {}
    for link in links if isinstance(links, list) else []:
        if isinstance(link, list) and len(link) >= 3:
            sources[link[0]] = [str(link[1]), link[2]]
    graph: dict[str, dict] = {}
    for node in nodes[:MAX_NODES]:
        if not isinstance(node, dict) or node.get("mode") in (2, 4):  # muted / bypassed
            continue
        kind = str(node.get("type", ""))
        inputs: dict[str, Any] = {}
        values = node.get("widgets_values")
        names = WIDGETS.get(kind) or (("text",) if "TextEncode" in kind else ())
        if isinstance(values, list):
            for name, value in zip(names, values, strict=False):
                inputs[name] = value
        for slot in node.get("inputs") or []:
            if isinstance(slot, dict) and slot.get("link") in sources:
                inputs[str(slot.get("name"))] = sources[slot["link"]]
        graph[str(node.get("id"))] = {"class_type": kind, "inputs": inputs}
    return graph
