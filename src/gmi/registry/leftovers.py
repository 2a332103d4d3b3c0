"""Files of the packed index that no committed state uses (`gmi check` lists them).

A write that makes a new packed generation or learned-parts file deletes the previous ones
after its commit; a write killed in between leaves them (the whole previous generation: every
point of the hub). They are leftovers, not faults: harmless, listed, deleted by --repair.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from gmi.registry.atomic import delete_if_older
from gmi.registry.packed.layout import LEARNED_DIR, PACKED_DIR, read_state


def leftovers(registry) -> tuple[str, list[Path]]:
    """(the committed generation, the files no committed state uses): other generations'
    arrays (a write killed between its commit and its clean-up leaves the whole previous
    generation) and other states' learned files. Listed by `gmi check`."""
    with registry.packed_source().connect() as db:
        state = read_state(db)
    found = []
    with contextlib.suppress(OSError):
        found += [p for p in (registry.home / PACKED_DIR).iterdir() if p.name != state.generation]
    with contextlib.suppress(OSError):
        found += [
            p
            for p in (registry.home / LEARNED_DIR).iterdir()
            if p.name != f"{state.token}.safetensors"
        ]
    return state.generation, sorted(found)


def delete_leftover(registry, path: Path, grace_s: float) -> bool:
    """Delete one leftover older than grace_s, re-checked under the write lock (a write
    making a new generation holds it until that generation is committed)."""
    with registry.packed_source().write() as db:
        state = read_state(db)
        if path.name in (state.generation, f"{state.token}.safetensors"):
            return False
        return delete_if_older(path, grace_s)
