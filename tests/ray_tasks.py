"""Finding a Ray worker busy with a submission task, to kill it (tests and benchmarks)."""

from __future__ import annotations

from pathlib import Path


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, read from /proc (Ray's workers are the raylet's children)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def running_task(pid: int) -> int | None:
    """A Ray worker under `pid` busy with a submission task (Ray titles it ray::<function>)."""
    for child in descendants(pid):
        try:
            title = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            continue
        if title.startswith(b"ray::prepare_model_task"):
            return child
    return None
