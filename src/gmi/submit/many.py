"""`gmi submit-many`: add every model of a manifest, the work spread over an executor.

The driver (this module) decides, the executor runs, the registry is written here alone:

1. Every entry's input digest is computed; a model already registered with the same digest
   is skipped (a re-run after a crash, a kill or a failure resumes where it stopped); one
   registered with other inputs is replaced only with `replace`.
2. A registry without a fixed kernel width gets it from the manifest's first model, as
   one-by-one submits would: that model runs alone first, the others after it.
3. The rest run on the executor (in this process, a local pool or Ray), each task reading or
   generating its images and building its spec where it runs; each result is written as soon
   as it is back (checked as strictly as a spec file), so a crash loses only models in flight.

A failed model is reported with its one-line error and does not stop the others. Storage
failures (a full disk, the registry's database gone) stop the run: they are not a model's.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from gmi.encoders import load_encoder
from gmi.errors import ConflictError, GmiError, StorageError, StoreUnavailableError
from gmi.submit.digests import DigestCache
from gmi.submit.executors import Executor, InProcess
from gmi.submit.manifest import ManifestEntry
from gmi.submit.prepare import Job, PreparedModel, prepare_entry

if TYPE_CHECKING:
    from gmi.hub import Hub


@dataclass
class SubmitManyResult:
    submitted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    # {"name", "near_duplicate_of", "reason"}: submitted models that copy a registered one
    near_duplicates: list[dict[str, str]] = field(default_factory=list)
    generated: int = 0
    seconds: float = 0.0
    executor: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "submitted": self.submitted,
            "skipped": self.skipped,
            "failed": self.failed,
            "near_duplicates": self.near_duplicates,
            "generated": self.generated,
            "seconds": round(self.seconds, 3),
            "executor": self.executor,
        }


def error_line(exc: BaseException) -> str:
    """One line for the summary: a GmiError's message as is, anything else with its type."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return text if isinstance(exc, GmiError) else f"{type(exc).__name__}: {text}".rstrip(": ")


def prepare_model_task(argument: tuple[ManifestEntry, Job]) -> PreparedModel:
    """What each executor runs (module level: Ray and pool processes import it by name)."""
    entry, job = argument
    return prepare_entry(entry, job)


def _wants_gpu(argument: tuple[ManifestEntry, Job]) -> bool:
    return argument[0].generator is not None


def submit_many(
    hub: Hub,
    entries: Sequence[ManifestEntry],
    executor: Executor | None = None,
    *,
    replace: bool = False,
    progress: bool = True,
) -> SubmitManyResult:
    """Submit every entry not already registered with the same inputs (see module doc)."""
    executor = executor or InProcess()
    started = time.perf_counter()
    result = SubmitManyResult(executor=executor.describe())
    load_encoder(hub.settings().encoder, hub.compute_device, str(hub.home))  # unknown: fail now
    bar = tqdm(total=len(entries), desc="submitting", unit="model", disable=not progress)

    def fail(entry: ManifestEntry, exc: BaseException) -> None:
        if isinstance(exc, StorageError | StoreUnavailableError):
            raise exc  # not this model's fault: stop, a re-run resumes
        result.failed.append({"name": entry.name, "error": error_line(exc)})
        bar.update(1)
        bar.set_postfix(failed=len(result.failed))

    cache = DigestCache.for_home(hub.home)  # a re-run stats unchanged folders, reads none
    todo = _plan(hub, entries, cache, replace, result, bar, fail)

    def outcomes(batch: list[tuple[ManifestEntry, str, bool]]) -> Iterator[Any]:
        # an absolute home: Ray workers do not run in the driver's working directory
        home = str(hub.home.resolve())
        job = Job(home, hub.settings().to_strings(), hub.device, progress=False)
        by_name = {entry.name: (entry, digest, again) for entry, digest, again in batch}
        jobs = (
            (entry.name, (entry, job))
            for entry, digest, again in batch
            if again or not stored_meanwhile(entry.name, digest)
        )
        for name, prepared, error in executor.run(prepare_model_task, jobs, _wants_gpu):
            yield by_name[name], prepared, error

    def stored_meanwhile(name: str, digest: str) -> bool:
        """Another run on this home stored this model with these inputs: skip it (two runs
        that meet share the work instead of failing each other's models)."""
        found = _recorded_inputs(hub, name) == digest
        if found:
            result.skipped.append(name)
            bar.update(1)
        return found

    def store(item: tuple[ManifestEntry, str, bool], prepared: PreparedModel | None, error) -> bool:
        entry, digest, again = item
        try:
            if error is not None:
                raise error
            assert prepared is not None
            hub.writer.store_prepared(entry, prepared, digest, replace=again)  # as one-by-one
        except ConflictError as exc:
            if not stored_meanwhile(entry.name, prepared.inputs or digest if prepared else digest):
                fail(entry, exc)
            return False
        except Exception as exc:
            fail(entry, exc)
            return False
        _stored(hub, entry.name, prepared, result)
        bar.update(1)
        return True

    try:
        # the kernel width is fixed by the first model that makes it in, in manifest order
        while todo and hub.settings().gamma is None:
            first = todo.pop(0)
            for item, prepared, error in outcomes([first]):
                store(item, prepared, error)
        if todo:
            for item, prepared, error in outcomes(todo):
                store(item, prepared, error)
    finally:
        bar.close()
        cache.close()  # the digests of this run: the next one stats, does not read
    result.seconds = time.perf_counter() - started
    return result


def _plan(hub, entries, cache, replace, result, bar, fail) -> list[tuple[ManifestEntry, str, bool]]:
    """Step 1: (entry, digest, replace it) for each entry still to do; skipped and failed
    entries go to the result as they are found."""
    todo: list[tuple[ManifestEntry, str, bool]] = []
    for number, entry in enumerate(entries):
        if number % 1000 == 999:
            cache.commit()
        try:
            digest = entry.inputs_digest(cache)
            registered = hub.exists() and hub.registry().exists(entry.name)
            if registered:
                recorded = hub.registry().get(entry.name).extra.get("inputs")
                if recorded == digest:
                    result.skipped.append(entry.name)
                    bar.update(1)
                    continue
                if not replace:
                    raise GmiError(
                        f"model {entry.name!r} is already registered with other inputs "
                        "(--replace updates it)"
                    )
            todo.append((entry, digest, registered))
        except GmiError as exc:
            fail(entry, exc)
    return todo


def _stored(hub: Hub, name: str, prepared: PreparedModel, result: SubmitManyResult) -> None:
    """Record a stored model, and whether it copies a registered one (a warning: it stays
    stored)."""
    result.submitted.append(name)
    result.generated += prepared.generated
    try:
        found = hub.near_duplicate(name)
    except GmiError:
        return  # the model is stored; a failed check is no reason to report it failed
    if found is not None:
        result.near_duplicates.append(
            {"name": name, "near_duplicate_of": found.model, "reason": found.reason}
        )


def _recorded_inputs(hub: Hub, name: str) -> str | None:
    """The input digest a registered model was stored with, or None."""
    try:
        return hub.registry().get(name).extra.get("inputs")
    except GmiError:
        return None
