"""`gmi check`: verify a registry against itself, and repair what a crash can leave behind.

A write stores files first and the database row last, so a crash can leave only *orphans*
(spec files, thumbnail folders or temp files no row points at); those are safe to delete. A row
whose spec is missing, damaged, crafted (NaNs, wrong shapes) or from another encoder should
never happen; it is reported, and `repair` removes such rows (the model must then be submitted
again). A spec built with another gamma than the registry's (two first submits racing, before
gamma was fixed atomically) is reported and rebuilt by `repair` from its own stored pairs.

Repair runs beside live writers: every deletion or rebuild happens inside the registry's write
transaction, after re-reading the row and re-verifying what was found, so a model replaced or
added meanwhile is never touched.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from gmi.attribution.weights import models_since_training
from gmi.attribution.weights import problem_with as weights_problem
from gmi.errors import CorruptSpecError
from gmi.registry.leftovers import delete_leftover, leftovers
from gmi.registry.packed.check import check_packed
from gmi.registry.packed.writer import spec_problem  # the rules identify applies, in one place
from gmi.registry.store import ModelRecord, Registry
from gmi.search.searchers import Searcher, registry_searcher
from gmi.settings import HubSettings
from gmi.spec.specification import Specification, build_specification


@dataclass
class CheckReport:
    models: int = 0
    ok: int = 0
    problems: list[str] = field(default_factory=list)  # rows that are not whole
    orphans: list[str] = field(default_factory=list)  # files no row points at
    repaired: list[str] = field(default_factory=list)
    # models a trained encoder never saw (submitted after gmi train): whole, served less well
    since_training: list[str] = field(default_factory=list)

    @property
    def consistent(self) -> bool:
        """Every model is whole (present with a valid spec) or absent. Orphans are leftovers of
        interrupted writes: harmless, reported, and deleted by repair."""
        return not self.problems

    def to_json(self) -> dict:
        return {
            "models": self.models,
            "ok": self.ok,
            "problems": self.problems,
            "orphans": self.orphans,
            "repaired": self.repaired,
            "since_training": self.since_training,
            "consistent": self.consistent,
        }


def inspect_record(
    registry: Registry, record: ModelRecord, settings: dict[str, str]
) -> tuple[str | None, Specification | None]:
    """(why this row's model is not whole, or None; its spec when it loads). Gamma is not
    judged here: a spec of another gamma is whole and repairable (check_registry)."""
    path = registry.spec_dir / record.spec_file
    try:
        data = path.read_bytes()
    except OSError:
        return f"spec file {record.spec_file} is missing", None
    if hashlib.sha256(data).hexdigest() != record.spec_sha256:
        return "spec file does not match its checksum", None
    try:
        spec = Specification.load(path, label="spec file")
    except CorruptSpecError as exc:
        return str(exc), None
    if spec.points.shape[0] != record.n_points or spec.pair_features.shape[0] != record.n_images:
        return "array shapes disagree with the record", spec
    without_gamma = {k: v for k, v in settings.items() if k != "gamma"}
    reference = HubSettings.from_strings({"encoder": spec.encoder, **without_gamma})
    return spec_problem(spec, reference), spec


def verify(registry: Registry, record: ModelRecord, settings: dict[str, str]) -> str | None:
    """Why this row's model is not whole, or None."""
    return inspect_record(registry, record, settings)[0]


def wrong_gamma(registry: Registry, record: ModelRecord, gamma: float | None) -> bool:
    if gamma is None:
        return False
    spec = registry.load_spec(record)
    return not np.isclose(spec.gamma, gamma, rtol=1e-9)


def check_registry(registry: Registry, repair: bool = False, grace_s: float = 60.0) -> CheckReport:
    """Check every row; with repair, remove broken rows, rebuild specs of another gamma, and
    delete orphans older than grace_s (a younger one may belong to a submit still running)."""
    report = CheckReport()
    settings = registry.settings()
    gamma = float(settings["gamma"]) if "gamma" in settings else None
    records = registry.list()
    report.models = len(records)
    weights = weights_problem(registry.home, settings.get("encoder", ""))
    if weights:  # a trained encoder (gmi train) whose weights are gone: nothing can encode
        report.problems.append(f"encoder: {weights}")
    report.since_training = models_since_training(
        registry.home, settings.get("encoder", ""), records
    )
    dims: set[tuple[int, int]] = set()
    broken: list[ModelRecord] = []
    regamma: list[ModelRecord] = []
    for record in records:
        problem, spec = inspect_record(registry, record, settings)
        if problem or spec is None:
            report.problems.append(f"{record.name}: {problem}")
            broken.append(record)
            continue
        dims.add((int(spec.points.shape[1]), int(spec.point_prompts.shape[1])))
        if gamma is not None and not np.isclose(spec.gamma, gamma, rtol=1e-9):
            report.problems.append(
                f"{record.name}: built with gamma {spec.gamma:.6g}, the registry uses "
                f"{gamma:.6g} (repair rebuilds it from its stored pairs)"
            )
            regamma.append(record)
            continue
        report.ok += 1
    if len(dims) > 1:
        report.problems.append(f"specs of different dimensions: {sorted(dims)}")
    report.orphans = [str(p.relative_to(registry.home)) for p in registry.orphans()]
    packed_problems = _packed_problems(registry, settings)
    index_leftovers = _index_leftovers(registry, settings)
    report.orphans += [str(p.relative_to(registry.home)) for p in index_leftovers]
    report.problems += packed_problems
    index_problems = [] if packed_problems else _search_index_problems(registry, settings)
    report.problems += index_problems
    if not repair:
        return report
    fixed: set[str] = set()
    for record in broken:
        if registry.remove_if(record, lambda r=record: verify(registry, r, settings) is not None):
            report.repaired.append(f"removed broken model {record.name}")
            fixed.add(record.name)
    for record in regamma:
        spec = registry.load_spec(record)
        rebuilt = build_specification(
            spec.pair_features,
            spec.pair_prompts,
            spec.prompt_texts,
            encoder=spec.encoder,
            gamma=gamma,
            n_points=spec.n_points if spec.n_points < spec.pair_features.shape[0] else None,
        )
        if registry.replace_spec_if(
            record, rebuilt, lambda r=record: wrong_gamma(registry, r, gamma)
        ):
            report.repaired.append(f"rebuilt {record.name} with the registry's gamma")
            report.ok += 1
            fixed.add(record.name)
    leftover_names = {str(p.relative_to(registry.home)) for p in index_leftovers}
    _delete_orphans(registry, report, leftover_names, grace_s)
    report.problems = [p for p in report.problems if p.split(":")[0] not in fixed]
    _rebuild_indexes(registry, settings, report, bool(packed_problems or fixed), index_problems)
    return report


def _delete_orphans(
    registry: Registry, report: CheckReport, leftover_names: set[str], grace_s: float
) -> None:
    """Delete the orphans and leftovers older than grace_s; keep the rest listed."""
    kept = []
    for rel in report.orphans:
        if rel in leftover_names:
            # another generation's ann index is read by no one and written by no one: no
            # grace; a packed generation or a temporary file may be a write in progress
            grace = 0.0 if rel.endswith(".faiss") else grace_s
            deleted = delete_leftover(registry, registry.home / rel, grace)
        else:
            deleted = registry.delete_orphan(registry.home / rel, grace_s)
        if deleted:
            report.repaired.append(f"deleted orphan {rel}")
        elif (registry.home / rel).exists():
            kept.append(rel)
    report.orphans = kept


def _rebuild_indexes(
    registry: Registry,
    settings: dict[str, str],
    report: CheckReport,
    packed_due: bool,
    index_problems: list[str],
) -> None:
    """Rebuild the packed index when it (or a model) was repaired, then the approximate
    searcher's index when it was wrong or the packed index has a new generation."""
    if packed_due:
        if registry.list_names(limit=1) and "image_dim" in registry.settings():
            registry.sync_index(HubSettings.from_strings(registry.settings()), full=True)
            report.repaired.append("rebuilt the packed index")
            index_problems = index_problems or ["the packed index has a new generation"]
        report.problems = [p for p in report.problems if not p.startswith("packed index:")]
    if index_problems and _searcher(registry, settings).indexed:
        _rebuild_search_index(registry, settings)
        report.repaired.append(f"rebuilt the {settings['searcher']} index")
        report.problems = [p for p in report.problems if p not in index_problems]
        report.problems += _search_index_problems(registry, settings)  # still wrong?


def _searcher(registry: Registry, settings: dict[str, str]) -> Searcher:
    return registry_searcher(
        settings.get("searcher", "exact"), settings.get("milvus_uri"), registry.home
    )


def _index_leftovers(registry: Registry, settings: dict[str, str]) -> list:
    """Files of the packed index and the searcher's index no committed state uses."""
    if "image_dim" not in settings:
        return []
    generation, found = leftovers(registry)
    # an ann index outlives a switch of searcher: its files are looked for whatever it is now
    ann = registry_searcher("ann", None, registry.home)
    return sorted(found + ann.leftovers(registry.home, generation))


def _search_index_problems(registry: Registry, settings: dict[str, str]) -> list[str]:
    """What is wrong with the approximate searcher's index (none for `exact`)."""
    searcher = _searcher(registry, settings)
    if not searcher.indexed or "image_dim" not in settings or not registry.list_names(limit=1):
        return []
    return searcher.check(registry.open_index(HubSettings.from_strings(settings)).arrays)


def _rebuild_search_index(registry: Registry, settings: dict[str, str]) -> None:
    if not registry.list_names(limit=1):
        return
    arrays = registry.open_index(HubSettings.from_strings(registry.settings())).arrays
    _searcher(registry, settings).rebuild(arrays)


def _packed_problems(registry: Registry, settings: dict[str, str]) -> list[str]:
    if "image_dim" not in settings or not registry.list_names(limit=1):
        return []
    return check_packed(registry.packed_source(), HubSettings.from_strings(settings))
