"""Copies vs siblings for a near-duplicate rule (issue 26 step 3): every model of a hub is
submitted again under `copy/NAME` from images of the SAME zoo model drawn with other seeds (a
re-upload), then `Hub.similar` says how far each copy is from its original and how far each
original is from its nearest distinct model.

    .venv/bin/python benchmarks/near_duplicates.py DEMO_HUB OUT.json

DEMO_HUB is copied (`gmi demo` builds one); rows go to OUT.json, a summary to stdout.
"""

import json
import shutil
import sys
from pathlib import Path

import gmi  # noqa
from gmi.hub import Hub
from gmi.zoo import load_zoo
from gmi.zoo.export import spec_images

src = Path(sys.argv[1])
home = Path(sys.argv[1] + "-copies")
if not home.exists():
    shutil.copytree(src, home, ignore=shutil.ignore_patterns("ann", "milvus.db"))

hub = Hub(home)
zoo = load_zoo()
names = [r.name for r in hub.models() if not r.name.startswith("copy/")]
rows = []
for name in names:
    images, prompts = spec_images(name)
    again = [zoo[name].generate(p, seed=10_000 + i) for i, p in enumerate(prompts)]
    if not hub.registry().exists(f"copy/{name}"):
        hub.submit_images(f"copy/{name}", again, prompts, progress=False)
for name in names:
    found = hub.similar(f"copy/{name}", top=2)
    others = [m for m in hub.similar(name, top=40) if not m.model.startswith("copy/")]
    rows.append(
        {
            "model": name,
            "dup": found[0].model == name,
            "dup_d": found[0].distance,
            "dup_score": found[0].score,
            "nearest_other": others[0].model,
            "other_d": others[0].distance,
            "other_score": others[0].score,
        }
    )
Path(sys.argv[2]).write_text(json.dumps(rows, indent=1))
d = [r["dup_d"] for r in rows]
o = [r["other_d"] for r in rows]
print("copies found first:", sum(r["dup"] for r in rows), "/", len(rows))
print("dup distance max", max(d), "other (nearest distinct model) min", min(o))
print(
    "dup score min",
    min(r["dup_score"] for r in rows),
    "other score max",
    max(r["other_score"] for r in rows),
)
