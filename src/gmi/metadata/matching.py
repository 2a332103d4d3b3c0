"""Which registered models an image's metadata names: the identify step between reading the
metadata and ranking.

    exact     the image's checkpoint carries a hash or AIR a registered model was submitted
              with: that model is ranked first, `exact_match: true`
    named     only the checkpoint's file name matches a model's stored file name (an alias
              given with `--model-hash NAME`, or the weights' file name): `named_match: true`,
              ranked first only when no hash contradicts it (the image gives the checkpoint's
              hash and the named model was submitted with hashes that are not it, or another
              model matches exactly)
    resources LoRAs (and other checkpoints of the graph) the image names that the hub holds,
              since a model hub lists LoRAs as models too

Pure given the two look-ups, so a test can call it without a registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gmi.metadata.record import Embedded, ModelRef

KeyLookup = Callable[[list[str]], dict[str, list[str]]]  # keys -> {key: [model names]}
HashesOf = Callable[[str], list[str]]  # model name -> its stored keys


@dataclass(frozen=True)
class NamedModels:
    exact: list[str] = field(default_factory=list)
    named: list[str] = field(default_factory=list)
    promoted: list[str] = field(default_factory=list)  # named and not contradicted
    resources: list[dict[str, Any]] = field(default_factory=list)


def named_models(found: Embedded, lookup: KeyLookup, hashes_of: HashesOf) -> NamedModels:
    refs = [*found.models, *found.loras]
    if not refs:
        return NamedModels()
    wanted = {k for ref in refs for part in ref.lookups() for k in part}
    hits = lookup(sorted(wanted)) if wanted else {}
    checkpoint = (
        found.checkpoint if found.checkpoint and found.checkpoint.role == "checkpoint" else None
    )
    exact: list[str] = []
    named: list[str] = []
    promoted: list[str] = []
    if checkpoint is not None:
        exact_keys, name_keys = checkpoint.lookups()
        exact = _names(hits, exact_keys)
        named = [n for n in _names(hits, name_keys) if n not in exact]
        promoted = (
            [] if exact else [n for n in named if not _contradicted(checkpoint, n, hashes_of)]
        )
    resources = []
    for ref in refs:
        if ref is checkpoint:
            continue
        exact_keys, name_keys = ref.lookups()
        for kind, names in (
            ("exact", _names(hits, exact_keys)),
            ("named", _names(hits, name_keys)),
        ):
            for name in names:
                if not any(r["model"] == name for r in resources):
                    resources.append(_resource(ref, name, kind))
    return NamedModels(exact, named, promoted, resources)


def _names(hits: dict[str, list[str]], keys: list[str]) -> list[str]:
    return sorted({n for k in keys for n in hits.get(k, [])})


def _contradicted(checkpoint: ModelRef, name: str, hashes_of: HashesOf) -> bool:
    """The image states the checkpoint's hash, and the named model was submitted with hashes,
    none of them that one."""
    exact_keys, _ = checkpoint.lookups()
    if not exact_keys:
        return False
    stored = [k for k in hashes_of(name) if not k.startswith("file:")]
    return bool(stored) and not set(stored) & set(exact_keys)


def _resource(ref: ModelRef, model: str, match: str) -> dict[str, Any]:
    out: dict[str, Any] = {"model": model, "name": ref.name, "role": ref.role, "match": match}
    if ref.weight is not None:
        out["weight"] = ref.weight
    return out
