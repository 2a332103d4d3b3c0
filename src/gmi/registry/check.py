"""`gmi check`: verify a registry against itself, and repair what a crash can leave behind.

A write stores files first and the database row last, so a crash can leave only *orphans*
(spec files, thumbnail folders or temp files no row points at); those are safe to delete. A row
whose spec is missing, damaged or from another encoder should never happen; it is reported,
and `repair` removes such rows (the model must then be submitted again).
"""

from __future__ import annotations

import hashlib
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from gmi.errors import CorruptSpecError
from gmi.registry.store import Registry
from gmi.spec.specification import Specification


@dataclass
class CheckReport:
    models: int = 0
    ok: int = 0
    problems: list[str] = field(default_factory=list)  # rows that are not whole
    orphans: list[str] = field(default_factory=list)  # files no row points at
    repaired: list[str] = field(default_factory=list)

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
            "consistent": self.consistent,
        }


def check_registry(registry: Registry, repair: bool = False, grace_s: float = 60.0) -> CheckReport:
    """Check every row; with repair, remove broken rows and delete orphans older than grace_s
    (a younger one may belong to a submit that is still running in another process)."""
    report = CheckReport()
    settings = registry.settings()
    records = registry.list()
    report.models = len(records)
    dims: set[int] = set()
    bad_rows = []
    for record in records:
        path = registry.spec_dir / record.spec_file
        try:
            data = path.read_bytes()
        except OSError:
            report.problems.append(f"{record.name}: spec file {record.spec_file} is missing")
            bad_rows.append(record.name)
            continue
        if hashlib.sha256(data).hexdigest() != record.spec_sha256:
            report.problems.append(f"{record.name}: spec file does not match its checksum")
            bad_rows.append(record.name)
            continue
        try:
            spec = Specification.load(path)
        except CorruptSpecError as exc:
            report.problems.append(f"{record.name}: {exc}")
            bad_rows.append(record.name)
            continue
        if settings.get("encoder") and spec.encoder != settings["encoder"]:
            report.problems.append(
                f"{record.name}: encoder {spec.encoder!r}, registry uses {settings['encoder']!r}"
            )
            bad_rows.append(record.name)
            continue
        if (
            spec.points.shape[0] != record.n_points
            or spec.pair_features.shape[0] != record.n_images
            or spec.points.shape[1] != spec.pair_features.shape[1]
        ):
            report.problems.append(f"{record.name}: array shapes disagree with the record")
            bad_rows.append(record.name)
            continue
        dims.add(int(spec.points.shape[1]))
        report.ok += 1
    if len(dims) > 1:
        report.problems.append(f"specs of different dimensions: {sorted(dims)}")
    report.orphans = [str(p.relative_to(registry.home)) for p in registry.orphans()]
    if repair:
        for name in bad_rows:
            registry.remove(name)
            report.repaired.append(f"removed broken model {name}")
        now = time.time()
        kept = []
        for rel in report.orphans:
            target = registry.home / rel
            if now - target.stat().st_mtime < grace_s:
                kept.append(rel)
                continue
            if target.is_dir():
                shutil.rmtree(target, ignore_errors=True)
            else:
                Path(target).unlink(missing_ok=True)
            report.repaired.append(f"deleted orphan {rel}")
        if bad_rows or report.orphans:
            report.problems = [p for p in report.problems if p.split(":")[0] not in bad_rows]
        report.orphans = kept
    return report
