"""`gmi check` for the packed index: every live slot against its model row and spec file
(O(hub), on demand only)."""

from __future__ import annotations

import contextlib

import numpy as np

from gmi.errors import CorruptSpecError, StorageError
from gmi.registry.packed.arrays import open_arrays, raw_points
from gmi.registry.packed.layout import (
    PACKED_DIR,
    PackedSource,
    read_space,
    read_state,
    spec_or_problem,
)
from gmi.registry.packed.learned import learned_path, load_learned
from gmi.registry.packed.reader import state_token
from gmi.registry.packed.writer import sync
from gmi.search.arrays import space_points
from gmi.settings import HubSettings


def check_packed(source: PackedSource, settings: HubSettings) -> list[str]:
    """What is wrong with the packed index (`gmi check`): behind the registry, a model
    without exactly one live slot, a slot without its model, rows that differ from the spec
    file, array files too short, the learned parts missing. [] when it is whole. O(hub)."""
    problems: list[str] = []
    dims = (settings.image_dim or 0, settings.prompt_dim or 0)
    if not source.read_only and not state_token(source):
        with contextlib.suppress(OSError, StorageError, CorruptSpecError):
            sync(source, settings)
    try:
        with source.connect() as db:
            db.execute("BEGIN")
            state = read_state(db)
            models = {
                r[0]: r for r in db.execute("SELECT name, spec_file, spec_sha256 FROM models")
            }
            live = db.execute(
                "SELECT name, spec_sha256, problem FROM packed_slots WHERE alive = 1 ORDER BY slot"
            ).fetchall()
            arrays = open_arrays(source.home, db, state, dims)[0] if dims[0] else None
            db.execute("COMMIT")
    except (OSError, ValueError, CorruptSpecError) as exc:
        return [f"packed index: cannot be opened ({exc})"]
    if not state.in_step:
        return ["packed index: behind the registry (the next identify or --repair updates it)"]
    seen: dict[str, int] = {}
    for name, sha, _ in live:
        seen[name] = seen.get(name, 0) + 1
        if name not in models or models[name][2] != sha:
            problems.append(f"packed index: slot of {name!r} has no such model")
    problems += [
        f"packed index: {name!r} has {seen.get(name, 0)} live slots"
        for name in models
        if seen.get(name, 0) != 1
    ]
    if arrays is not None:
        projected = arrays if arrays.space is not None else None
        if projected is not None:
            root = source.home / PACKED_DIR / state.generation
            arrays = raw_points(arrays, root)
            space = read_space(root)
        for slot in np.flatnonzero(arrays.alive):
            name = arrays.names[slot]
            if name not in models:
                continue
            spec, _ = spec_or_problem(source, name, models[name][1], models[name][2])
            if spec is None:
                continue  # the spec file itself is reported by check_registry
            packed = arrays.spec_arrays(int(slot))
            same = all(
                np.array_equal(packed[key], np.asarray(getattr(spec, key), dtype=packed[key].dtype))
                for key in ("points", "beta", "point_prompts", "pair_features", "pair_prompts")
            ) and [arrays.texts[t] for t in packed["pair_texts"]] == list(spec.prompt_texts)
            if same and projected is not None and space is not None:
                rows = slice(projected.point_offsets[slot], projected.point_offsets[slot + 1])
                stored, sq_norms = space_points(space, np.asarray(spec.points, np.float32))
                same = np.allclose(
                    projected.points[rows], np.asarray(stored), rtol=1e-4, atol=1e-4
                ) and np.allclose(projected.sq_norms[rows], sq_norms, rtol=1e-4)
            if not same:
                problems.append(f"packed index: the rows of {name!r} differ from its spec file")
    learned = learned_path(source.home, state.token)
    if learned.exists() and load_learned(source.home, state.token) is None:
        problems.append("packed index: the learned-parts file is damaged (repair refits it)")
    return problems  # a missing learned file is a cache miss (refitted on open), not a fault
