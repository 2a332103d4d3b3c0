"""The submit write path: a built spec -> the registry, the same for `gmi submit`, the HTTP
service and `submit-many` (which calls it without a Hub).

The order is what keeps a registry whole: fix the registry's settings with the first model
(atomically: the first writer wins and every racing submit reads its values back), refuse a
spec they cannot compare, rebuild it with the registry's gamma when another first submit won,
store files first and the row last (the store's job), then bring the packed index in step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gmi.errors import ConflictError, CorruptSpecError, GmiError
from gmi.registry.base import Store
from gmi.registry.files import ModelRecord
from gmi.settings import HubSettings
from gmi.spec.specification import Specification
from gmi.submit.kept import kept_summary
from gmi.submit.manifest import ManifestEntry
from gmi.submit.prepare import PreparedModel, rebuild_with_gamma


@dataclass(frozen=True)
class SpecWrite:
    """What is stored with a spec: thumbnails, description and checkpoint hashes (None keep
    the old ones on replace), whether it may replace a model, and extra record fields."""

    thumbnails: list[bytes] = field(default_factory=list)
    description: str | None = None
    replace: bool = False
    model_hashes: list[str] | None = None
    extra: dict[str, Any] | None = None
    kept: list[tuple[str, bytes]] | None = None  # the kept images' files (gmi.submit.kept)


def fixed_values(spec: Specification) -> dict[str, str]:
    """The settings a registry fixes at its first submit, as this spec has them."""
    return {
        "gamma": repr(spec.gamma),
        "image_dim": str(spec.points.shape[1]),
        "prompt_dim": str(spec.point_prompts.shape[1]),
    }


@dataclass(frozen=True)
class SpecWriter:
    """Writes specs into one registry. `registry(create)` opens its store; `settings()` are
    the registry's settings (or the requested ones for a registry not yet made)."""

    home: Path
    registry: Callable[[bool], Store]
    settings: Callable[[], HubSettings]

    def store(self, name: str, spec: Specification, write: SpecWrite) -> ModelRecord:
        """Fix the settings with the first model, refuse a spec they cannot compare, store
        atomically, bring the index in step."""
        settings = self.settings()
        registry = self.registry(True)
        # fixed once, atomically: the first writer's values win, racing submits read them back
        stored = registry.set_settings({**settings.to_strings(), **fixed_values(spec)})
        mine = fixed_values(spec)
        for key, ours in (
            ("encoder", spec.encoder),
            ("image_dim", mine["image_dim"]),
            ("prompt_dim", mine["prompt_dim"]),
        ):
            if stored.get(key, ours) != ours:
                raise ConflictError(
                    f"registry {self.home} has {key} {stored[key]!r}, this submission "
                    f"{ours!r}; specs that differ there cannot be compared"
                )
        if float(stored["gamma"]) != spec.gamma:  # another first submit fixed it before us
            spec = rebuild_with_gamma(spec, float(stored["gamma"]), settings.n_points)
        extra = dict(write.extra or {})
        if write.kept:
            extra["kept_images"] = kept_summary(write.kept, settings.keep_images)
        record = registry.add(
            name,
            spec,
            description=write.description,
            replace=write.replace,
            thumbnails=write.thumbnails,
            model_hashes=write.model_hashes,
            extra=extra,
            kept=write.kept,
        )
        self.sync()
        return record

    def store_prepared(
        self, entry: ManifestEntry, prepared: PreparedModel, digest: str, *, replace: bool
    ) -> ModelRecord:
        """Store a model prepared anywhere (a worker's bytes are checked like a file read)."""
        spec = Specification.from_bytes(prepared.spec, f"model {entry.name!r}")
        write = SpecWrite(
            thumbnails=prepared.thumbnails,
            description=entry.description,
            replace=replace,
            model_hashes=prepared.model_hashes or None,
            extra={**prepared.extra, "inputs": prepared.inputs or digest},
            kept=prepared.kept,
        )
        return self.store(entry.name, spec, write)

    def fixed_settings(self) -> HubSettings:
        """The settings, with the values a registry fixes at its first submit filled in from
        its models for registries made before gmi recorded them."""
        settings = self.settings()
        if settings.gamma is not None and settings.image_dim is not None:
            return settings
        registry = self.registry(False)
        for record in registry.list():
            try:
                spec = registry.load_spec(record)
            except CorruptSpecError:
                continue
            if not registry.read_only:
                return HubSettings.from_strings(registry.set_settings(fixed_values(spec)))
            return HubSettings.from_strings({**fixed_values(spec), **settings.to_strings()})
        return settings

    def sync(self) -> None:
        """Bring the packed index and the learned parts in step after a write in this process
        (O(the change), gmi.registry.packed), so the next identify, in any process, finds
        them ready. The write has already taken effect: nothing here may turn it into a
        reported failure (a reader syncs again, and `gmi check` reports problems)."""
        try:
            registry = self.registry(False)
            if registry.list_names(limit=1):
                registry.sync_index(self.fixed_settings())
        except (GmiError, OSError):
            pass
