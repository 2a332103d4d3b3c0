"""Content Credentials (C2PA): the signed provenance manifests that closed generators (OpenAI,
Google, Adobe Firefly, Microsoft Designer...) attach to what they make.

Such an image names no checkpoint a hub can hold, but it says who made it and whether it was
generated: an entry reports `"provenance": {"claim_generator", "ai_generated", ...}`. It is
read with the maintained C2PA library (`pip install gmi[c2pa]`, c2pa-python), offline (no
remote manifests, no OCSP), and reported as present-but-unread when that library is missing or
the manifest does not parse.
"""

from __future__ import annotations

import io
import json
from typing import Any

from gmi.metadata.containers import Entries

AI_SOURCE_TYPES = ("trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia")
OFFLINE_SETTINGS = {
    "verify": {"ocsp_fetch": False, "remote_manifest_fetch": False, "verify_trust": False},
}


def read_provenance(entries: Entries, warnings: list[str], label: str) -> dict[str, Any]:
    unread: dict[str, Any] = {"c2pa": True, "read": False}
    try:
        import c2pa
    except ImportError:
        return {**unread, "reason": "the C2PA reader is not installed: pip install 'gmi[c2pa]'"}
    if not entries.file or not entries.mime:
        return {**unread, "reason": "no C2PA reader for this file type"}
    try:
        store = json.loads(_manifest_json(c2pa, entries))
    except Exception as exc:
        warnings.append(f"{label}: its C2PA manifest cannot be read ({str(exc)[:120]})")
        return {**unread, "reason": "the C2PA manifest does not parse"}
    return summarise(store)


def _manifest_json(c2pa: Any, entries: Entries) -> str:
    context = None
    try:
        context = c2pa.Context.from_json(json.dumps(OFFLINE_SETTINGS))
    except Exception:
        context = None
    stream = io.BytesIO(entries.file or b"")
    reader = (
        c2pa.Reader(entries.mime, stream, context=context)
        if context is not None
        else c2pa.Reader(entries.mime, stream)
    )
    try:
        return reader.json()
    finally:
        reader.close()


def summarise(store: dict[str, Any]) -> dict[str, Any]:
    """The active manifest's claim generator, whether an action says the content was made by
    a trained model (IPTC digital source type), who signed it and the validation state."""
    manifests = store.get("manifests") if isinstance(store.get("manifests"), dict) else {}
    active = manifests.get(store.get("active_manifest"), {}) if manifests else {}
    generator = active.get("claim_generator")
    info = active.get("claim_generator_info")
    if not generator and isinstance(info, list) and info and isinstance(info[0], dict):
        generator = " ".join(str(info[0].get(k)) for k in ("name", "version") if info[0].get(k))
    ai_generated = False
    for manifest in manifests.values():
        for assertion in manifest.get("assertions") or []:
            if not str(assertion.get("label", "")).startswith("c2pa.actions"):
                continue
            for action in (assertion.get("data") or {}).get("actions") or []:
                source = str(action.get("digitalSourceType", ""))
                ai_generated |= any(source.endswith(t) for t in AI_SOURCE_TYPES)
    signature = active.get("signature_info") or {}
    out: dict[str, Any] = {
        "c2pa": True,
        "read": True,
        "claim_generator": str(generator)[:200] if generator else None,
        "ai_generated": ai_generated,
    }
    if signature.get("issuer"):
        out["signed_by"] = str(signature["issuer"])[:200]
    if store.get("validation_state"):
        out["validation"] = str(store["validation_state"])
    return out
