"""Creating a registry (`gmi init`, or a first submit): check every component its settings
name before anything is made, then fix the settings."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from gmi.encoders import load_encoder
from gmi.errors import InvalidInputError
from gmi.interrogators import load_interrogator
from gmi.registry.base import Store
from gmi.search.milvus import SERVER_SCHEMES
from gmi.search.shortlist import Searcher
from gmi.settings import HubSettings


def create_registry(
    settings: HubSettings,
    device: str,
    open_registry: Callable[[], Store],
    searcher_of: Callable[[HubSettings], Searcher],
) -> HubSettings:
    """Create the registry (`open_registry`) and store `settings`; returns what is stored
    (a racing creator's values win). An unknown encoder or interrogator, or an unreachable
    Milvus server, fails before anything exists."""
    load_encoder(settings.encoder, device)
    load_interrogator(settings.interrogator)
    if settings.milvus_uri and settings.searcher != "milvus":
        raise InvalidInputError("--milvus-uri is for --searcher milvus")
    # No URI: Milvus Lite in the registry's own folder, found from the home each time (a
    # relative --home, another working directory or a copied hub never points elsewhere).
    # A Milvus Lite file given relative to here is stored absolute, for the same reason.
    lite = settings.searcher == "milvus" and not str(settings.milvus_uri).startswith(SERVER_SCHEMES)
    if lite and settings.milvus_uri:
        settings = settings.with_values(milvus_uri=str(Path(settings.milvus_uri).resolve()))
    if settings.searcher == "milvus" and not lite:  # reachable? before anything is made
        searcher_of(settings).client()  # type: ignore[attr-defined]
    registry = open_registry()
    if lite:  # Milvus Lite's file may live in the registry's folder, made just now
        searcher_of(settings).client()  # type: ignore[attr-defined]
    return HubSettings.from_strings(registry.set_settings(settings.to_strings()))
