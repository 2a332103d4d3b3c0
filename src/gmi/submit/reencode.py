"""`gmi reencode`: rebuild every model's specification from its kept images (gmi.submit.kept),
with the registry's encoder or another one, and switch the whole hub over at once.

Why all at once: features of two encoders cannot be compared, so a hub is never half
re-encoded. The new specs are built first, in a staging folder beside the registry
(`reencode/<target>/`, one file per model, written atomically), on any executor of
submit-many (this process, local processes, Ray; on the GPU where a task has one). Then ONE
transaction replaces every model's row and the encoder settings (gmi.registry.writes.Swap);
the packed index sees rows of another encoder and is packed anew, the learned space refitted.

Crash-safe and resumable like submit: a re-run keeps every staged spec still built from the
model's current spec file and encodes only the rest; a model submitted, replaced or removed
while the specs were staged makes the commit refuse, and the run stages what changed and tries
again. A model whose images were not kept (registries made before gmi kept them, or
keep_images=none) cannot be re-encoded: the run refuses before any work and names them.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from gmi.encoders import load_encoder
from gmi.errors import ConflictError, InvalidInputError, StorageError
from gmi.registry.atomic import atomic_write
from gmi.registry.files import ModelRecord
from gmi.registry.writes import ModelWrite, Swap
from gmi.settings import HubSettings
from gmi.spec.specification import Specification
from gmi.submit.executors import Executor, InProcess
from gmi.submit.many import error_line

if TYPE_CHECKING:
    from gmi.hub import Hub
    from gmi.registry.base import Store

STAGING_DIR = "reencode"
COMMIT_ATTEMPTS = 3  # rounds of "stage what changed, commit" while others write


@dataclass
class ReencodeResult:
    encoder: str
    previous_encoder: str
    models: int = 0
    encoded: int = 0  # specs built by this run
    resumed: int = 0  # staged by an earlier, interrupted run
    gamma: float = 0.0
    seconds: float = 0.0
    executor: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "encoder": self.encoder,
            "previous_encoder": self.previous_encoder,
            "models": self.models,
            "encoded": self.encoded,
            "resumed": self.resumed,
            "gamma": self.gamma,
            "seconds": round(self.seconds, 3),
            "executor": self.executor,
        }


def reencode_task(argument: tuple[str, str, str, dict[str, str], str]) -> bytes:
    """One model's new spec from its kept imagefolder (module level: pool and Ray workers
    import it by name). Returns the spec as safetensors bytes."""
    from gmi.imagefolder import read_imagefolder
    from gmi.images import open_image
    from gmi.search.ranking import resolve_device
    from gmi.submit.prepare import encode_specification

    home, folder, name, settings, device = argument
    found = read_imagefolder(Path(folder))
    images = [open_image(pair.path) for pair in found.pairs]
    prompts = [pair.prompt for pair in found.pairs]
    spec = encode_specification(
        name, images, prompts, HubSettings.from_strings(settings), resolve_device(device),
        home=home,
    )  # fmt: skip
    return spec.to_bytes()


class Staging:
    """The staged specs of one target: `<key>.safetensors` + `<key>.json` ({name, from}) per
    model, and the kernel width the first model fixed (`gamma`)."""

    def __init__(self, home: Path, target: HubSettings) -> None:
        label = f"{target.encoder}|{target.augment}|{target.n_points}"
        self.root = home / STAGING_DIR / hashlib.sha256(label.encode()).hexdigest()[:16]

    def _key(self, name: str) -> str:
        return hashlib.sha256(name.encode()).hexdigest()[:24]

    def gamma(self) -> float | None:
        path = self.root / "gamma"
        return float(path.read_text()) if path.is_file() else None

    def fix_gamma(self, gamma: float) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write(self.root / "gamma", repr(gamma).encode())

    def put(self, record: ModelRecord, spec: bytes) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        key = self._key(record.name)
        atomic_write(self.root / f"{key}.safetensors", spec)
        source = {"name": record.name, "from": record.spec_file}
        atomic_write(self.root / f"{key}.json", json.dumps(source).encode())

    def get(self, record: ModelRecord) -> bytes | None:
        """The staged spec built from this record's current spec file, or None."""
        key = self._key(record.name)
        try:
            source = json.loads((self.root / f"{key}.json").read_text(encoding="utf-8"))
            if source != {"name": record.name, "from": record.spec_file}:
                return None
            return (self.root / f"{key}.safetensors").read_bytes()
        except (OSError, ValueError):
            return None

    def committed(self, record: ModelRecord) -> bool:
        """Whether this record IS the staged spec (a run that committed, then died)."""
        key = self._key(record.name)
        try:
            data = (self.root / f"{key}.safetensors").read_bytes()
        except OSError:
            return False
        return hashlib.sha256(data).hexdigest() == record.spec_sha256

    def clear(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def unkept(store: Store, records: list[ModelRecord]) -> list[str]:
    """Models whose images were not kept: they cannot be re-encoded."""
    return [r.name for r in records if not store.kept_dir(r.spec_file).is_dir()]


def reencode(
    hub: Hub, encoder: str | None = None, executor: Executor | None = None, *, progress: bool = True
) -> ReencodeResult:
    """Re-encode every model with `encoder` (default: the registry's own) and switch the hub
    over in one transaction (see the module doc)."""
    started = time.perf_counter()
    if not hub.exists():
        raise InvalidInputError(f"{hub.home}: no gmi registry here (submit a model first)")
    store = hub.registry()
    if store.read_only:
        raise StorageError(f"{hub.home}: the registry is read-only here; nothing was changed")
    current = hub.settings()
    target = current.with_values(encoder=encoder or current.encoder)
    load_encoder(target.encoder, hub.compute_device, home=str(hub.home))  # unknown: fail first
    executor = executor or InProcess()
    run = _Run(hub, store, Staging(hub.home, target), target, executor, progress)
    run.result = ReencodeResult(target.encoder, current.encoder, executor=executor.describe())
    same = target.encoder == current.encoder and current.gamma is not None
    gamma = current.gamma if same else run.stage.gamma()
    for _ in range(COMMIT_ATTEMPTS):
        records = store.list()
        if not records:
            raise InvalidInputError(f"{hub.home}: the registry has no models to re-encode")
        if all(run.stage.committed(r) for r in records):  # an earlier run committed, then died
            break
        refuse_unkept(store, records, "re-encoded")
        gamma = run.stage_all(records, gamma)
        try:
            run.commit(records, gamma)
            break
        except ConflictError:
            continue  # the catalogue moved: stage what changed and try again
    else:
        raise ConflictError(
            f"the registry kept changing during {COMMIT_ATTEMPTS} attempts; nothing was "
            "changed (re-run gmi reencode when submits are quieter; staged specs are kept)"
        )
    hub.writer.sync()  # rows of another encoder: the packed index is rebuilt
    run.stage.clear()
    run.result.models = len(records)
    run.result.gamma = float(hub.settings().gamma or 0.0)
    run.result.seconds = time.perf_counter() - started
    return run.result


def refuse_unkept(store: Store, records: list[ModelRecord], what: str) -> None:
    """Models whose images were not kept cannot be re-encoded (or trained on): one clear
    error naming them."""
    missing = [r.name for r in records if not store.kept_dir(r.spec_file).is_dir()]
    if missing:
        raise InvalidInputError(
            f"{len(missing)} model(s) have no kept images and cannot be {what} "
            f"({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}): they were "
            "submitted before gmi kept spec images, or with keep_images=none; submit them "
            "again (or remove them), then re-run"
        )


@dataclass
class _Run:
    """One `gmi reencode`: where it reads, stages and runs, and what it has done."""

    hub: Hub
    store: Store
    stage: Staging
    target: HubSettings
    executor: Executor
    progress: bool
    result: ReencodeResult = field(default_factory=lambda: ReencodeResult("", ""))

    def _jobs(self, records: list[ModelRecord], gamma: float | None):
        home = str(self.hub.home.resolve())  # Ray workers do not run in the driver's folder
        settings = self.target.with_values(gamma=gamma).to_strings()
        for record in records:
            folder = str(self.store.kept_dir(record.spec_file).resolve())
            yield record.name, (home, folder, record.name, settings, self.hub.device)

    def stage_all(self, records: list[ModelRecord], gamma: float | None) -> float:
        """Stage every record's new spec that is not staged yet; with a new encoder the
        first one fixes the kernel width, as a new registry's first model does."""
        todo = [r for r in records if self.stage.get(r) is None]
        self.result.resumed += len(records) - len(todo)
        by_name = {r.name: r for r in todo}
        bar = tqdm(total=len(todo), desc="re-encoding", unit="model", disable=not self.progress)
        try:
            while todo and gamma is None:
                first = todo.pop(0)
                jobs = self._jobs([first], None)
                for name, data, error in self.executor.run(reencode_task, jobs):
                    self._stage_one(by_name[name], data, error, bar)
                    gamma = Specification.from_bytes(data, f"model {name!r}").gamma
                    self.stage.fix_gamma(gamma)
            for name, data, error in self.executor.run(reencode_task, self._jobs(todo, gamma)):
                self._stage_one(by_name[name], data, error, bar)
        finally:
            bar.close()
        assert gamma is not None
        return gamma

    def _stage_one(self, record: ModelRecord, data: bytes | None, error, bar: tqdm) -> None:
        if error is not None:  # one model failing stops the switch: the hub stays as it was
            raise InvalidInputError(
                f"model {record.name!r} could not be re-encoded ({error_line(error)}); "
                "nothing was changed, the specs staged so far are kept for the next run"
            )
        assert data is not None
        Specification.from_bytes(data, f"model {record.name!r}")  # checked as a spec file is
        self.stage.put(record, data)
        self.result.encoded += 1
        bar.update(1)

    def commit(self, records: list[ModelRecord], gamma: float) -> None:
        """Every model's staged spec, and the new settings, in one transaction."""
        writes = []
        for record in records:
            data = self.stage.get(record)
            if data is None:
                raise ConflictError(f"model {record.name!r} is not staged")
            spec = Specification.from_bytes(data, f"model {record.name!r}")
            writes.append(
                ModelWrite(record.name, spec, replace=True, extra=record.extra,
                           linked_from=record.spec_file)
            )  # fmt: skip
        values = {
            "encoder": self.target.encoder,
            "gamma": repr(gamma),
            "image_dim": str(spec.points.shape[1]),
            "prompt_dim": str(spec.point_prompts.shape[1]),
        }
        self.store.replace_all(writes, Swap({r.name: r.spec_file for r in records}, values))
