"""`gmi demo` / `make demo`: build a hub from the built-in zoo, identify held-out uploads.

Every zoo model submits its images for the standard spec prompts; then, per model, one image
for a held-out test prompt (new seed, JPEG, another size: what a user uploads) is identified
against the whole hub. Prints each ranking with the true model marked, and the hit rates.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

from tqdm import tqdm

from gmi.errors import InvalidInputError
from gmi.hub import Hub
from gmi.zoo import load_zoo
from gmi.zoo.export import query_upload, spec_images

DEFAULT_DEMO_HOME = Path("demo-hub")


def gmi_command() -> str:
    """How to call gmi from here: plain `gmi` when it is on PATH, else its path in the venv
    (after `make demo`, `.venv/bin/gmi` unless the venv is activated)."""
    found = shutil.which("gmi")
    local = Path(sys.executable).with_name("gmi")
    if found and Path(found).resolve() == local.resolve():
        return "gmi"
    if local.exists():
        try:
            return str(local.relative_to(Path.cwd()))
        except ValueError:
            return str(local)
    return "gmi"


def _fresh_home(home: Path) -> None:
    """Start the demo hub from scratch, but never delete a folder that is not a gmi hub."""
    if home.exists():
        if any(home.iterdir()) and not (home / "registry.db").exists():
            raise InvalidInputError(
                f"{home} exists and is not a gmi registry; choose another --home"
            )
        shutil.rmtree(home)
    home.mkdir(parents=True)


def run_demo(
    home: str | Path | None = None,
    models: int | None = None,
    interrogator: str | None = None,
    json_output: bool = False,
) -> int:
    home = Path(home) if home else DEFAULT_DEMO_HOME
    _fresh_home(home)
    names = list(load_zoo())[: models or None]
    hub = Hub(home)
    started = time.perf_counter()
    for name in tqdm(names, desc="submitting zoo models", unit="model", file=sys.stderr):
        images, prompts = spec_images(name)
        spec = load_zoo()[name].spec
        hub.submit_images(name, images, prompts, description=spec.description, progress=False)
    submitted = time.perf_counter() - started

    query_dir = home / "queries"
    query_dir.mkdir()
    paths, prompts = [], []
    for index, name in enumerate(names):
        data, prompt = query_upload(name, index % 48)
        path = query_dir / f"{name}.jpg"
        path.write_bytes(data)
        paths.append(path)
        prompts.append(prompt)
    started = time.perf_counter()
    results = hub.identify(paths, top=len(names), interrogator=interrogator)
    identified = time.perf_counter() - started

    ranks = []
    rows = []
    for name, prompt, result in zip(names, prompts, results, strict=True):
        order = [m.model for m in result.results]
        rank = order.index(name) + 1
        ranks.append(rank)
        rows.append(
            {
                "model": name,
                "true_prompt": prompt,
                "interrogated": result.prompt,
                "rank": rank,
                "top4": order[:4],
            }
        )
    top1 = sum(r == 1 for r in ranks) / len(ranks)
    top4 = sum(r <= 4 for r in ranks) / len(ranks)
    summary = {
        "models": len(names),
        "queries": len(ranks),
        "top1": top1,
        "top4": top4,
        "mean_rank": sum(ranks) / len(ranks),
        "submit_seconds": round(submitted, 1),
        "identify_seconds": round(identified, 2),
        "home": str(home),
        "settings": hub.settings().to_strings(),
    }
    if json_output:
        print(json.dumps({"summary": summary, "queries": rows}, indent=2))
        return 0
    print(f"\nDemo hub: {len(names)} zoo models in {home} (submitted in {submitted:.0f}s)")
    print(
        "One held-out upload per model (JPEG, new size, unseen prompt); '*' marks the true model.\n"
    )
    width = max(len(n) for n in names)
    print(f"{'true model':<{width}}  rank  top 4")
    for row in rows:
        marked = [f"*{m}" if m == row["model"] else m for m in row["top4"]]
        print(f"{row['model']:<{width}}  {row['rank']:>4}  {', '.join(marked)}")
    print(
        f"\ntop-1 hit rate: {top1:.2f}   top-4 hit rate: {top4:.2f}   mean rank: "
        f"{summary['mean_rank']:.2f}   ({len(ranks)} queries, identified in {identified:.1f}s)"
    )
    print(f"Try it yourself:  {gmi_command()} --home {home} identify {paths[0]}")
    return 0
