"""gmi's reduced-set RKME builder against the peer implementation: the `learnware` package's
RKMETableSpecification (issue 15, step 3), on the same embeddings.

    .venv/bin/python benchmarks/learnware_rkme.py [--n 256 1024 4096] [--d 512 1280]
        [--k 16 64] [--json]

learnware runs in its own virtual environment (default ~/.cache/gmi/learnware-venv), made by
this script on first use with `pip install --no-deps learnware` plus only what its table RKME
imports: torch (the CPU build), numpy, scipy, qpsolvers + clarabel (its QP for beta),
fast-pytorch-kmeans (its initialisation; + psutil, which that imports undeclared) and pyyaml
(its utils). The RKME module is loaded
from its file with the package's light parents only, so learnware's LLM and image extras
(trl, peft, transformers, datasets) are neither installed nor imported.

Embeddings: a fixed mixture of 32 Gaussian clusters in d dimensions, rows L2-normalised like
encoder features (seed 0); both builders get the same rows and the same gamma (gmi's default
rule on them). Timings exclude imports and process start (each side times its own call);
learnware on the CPU; each builder is timed --repeats times (default 3) and the median kept,
as single timings of learnware vary by +-30% between runs. The squared MMD to the full
empirical embedding is computed here in float64 for both. Two constraints:

- `simplex`: beta >= 0 and sum(beta) = 1 (learnware's default, `nonnegative_beta=True`, a QP);
  gmi with `build_reduced_set(..., simplex=True)`.
- `free`: each side's own unconstrained variant: learnware `nonnegative_beta=False` (beta from a
  linear solve, any sign), gmi's default (beta >= 0, no sum constraint).

Prints a table, or with --json a list of rows with "n", "d", "k", "constraint", "gmi_s",
"learnware_s", "gmi_mmd2", "learnware_mmd2".
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from gmi.spec.kernels import default_gamma
from gmi.spec.rkme import build_reduced_set, mmd_squared

VENV = Path.home() / ".cache" / "gmi" / "learnware-venv"
LEARNWARE = "learnware==0.4.0.post1"
NEEDS = [
    "torch==2.13.0",
    "numpy",
    "scipy",
    "qpsolvers",
    "clarabel",
    "fast-pytorch-kmeans",
    "psutil",  # fast-pytorch-kmeans imports it without declaring it
    "pyyaml",
]

WORKER = r"""
import importlib.util, json, sys, time, types
from pathlib import Path
import numpy as np

root = Path(importlib.util.find_spec("learnware").submodule_search_locations[0])
for name in ("learnware", "learnware.specification", "learnware.specification.regular",
             "learnware.specification.regular.table"):
    package = types.ModuleType(name)  # a parent without its __init__ (no LLM/image imports)
    package.__path__ = [str(root.joinpath(*name.split(".")[1:]))]
    sys.modules[name] = package
from learnware.specification.regular.table.rkme import RKMETableSpecification
import torch
torch.set_num_threads(2)

jobs = json.loads(Path(sys.argv[1]).read_text())
data = np.load(sys.argv[2])
out = {}
for job in jobs:
    x = data[job["key"]].astype(np.float64)
    seconds = []
    for _ in range(job["repeats"]):
        spec = RKMETableSpecification(gamma=job["gamma"], cuda_idx=-1)
        started = time.perf_counter()
        spec.generate_stat_spec_from_data(
            X=x.copy(), K=job["k"], nonnegative_beta=job["constraint"] == "simplex"
        )
        seconds.append(time.perf_counter() - started)
    tag = job["tag"]
    out[tag + "/z"] = spec.get_z().reshape(job["k"], -1)
    out[tag + "/beta"] = spec.get_beta().reshape(-1)
    out[tag + "/seconds"] = np.array(seconds)
np.savez(sys.argv[3], **out)
"""


def ensure_venv(venv: Path) -> Path:
    python = venv / "bin" / "python"
    if python.exists():
        return python
    print(f"making {venv} (torch CPU + learnware --no-deps)...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, *NEEDS], check=True)
    subprocess.run([*pip, "--no-deps", LEARNWARE], check=True)
    return python


def embeddings(n: int, d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng([seed, d])
    centres = rng.normal(size=(32, d))
    labels = rng.integers(0, 32, size=n)
    x = centres[labels] + 0.6 * rng.normal(size=(n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def run(args: argparse.Namespace) -> list[dict]:
    python = ensure_venv(Path(args.venv).expanduser())
    configs = [
        (n, d, k, c) for d in args.d for n in args.n for k in args.k for c in ("simplex", "free")
    ]
    data = {f"x{n}_{d}": embeddings(n, d) for d in args.d for n in args.n}
    gammas = {key: default_gamma(x) for key, x in data.items()}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        jobs = [
            {"key": f"x{n}_{d}", "k": k, "constraint": c, "gamma": gammas[f"x{n}_{d}"],
             "tag": f"{n}_{d}_{k}_{c}", "repeats": args.repeats}
            for n, d, k, c in configs
        ]  # fmt: skip
        Path(tmp, "jobs.json").write_text(json.dumps(jobs))
        np.savez(Path(tmp, "data.npz"), **data)
        script = Path(tmp, "worker.py")
        script.write_text(WORKER)
        print(f"learnware: {len(jobs)} specifications...", file=sys.stderr)
        subprocess.run(
            [str(python), str(script), str(Path(tmp, "jobs.json")), str(Path(tmp, "data.npz")),
             str(Path(tmp, "out.npz"))],
            check=True,
        )  # fmt: skip
        theirs = dict(np.load(Path(tmp, "out.npz")))
    build_reduced_set(embeddings(64, 8), 4, 1.0)  # imports (scipy) before timing, as theirs
    for (n, d, k, constraint), job in zip(configs, jobs, strict=True):
        x, gamma = data[job["key"]], job["gamma"]
        times = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            ours = build_reduced_set(x, k, gamma, simplex=constraint == "simplex")
            times.append(time.perf_counter() - started)
        gmi_s = float(np.median(times))
        z, beta = theirs[job["tag"] + "/z"], theirs[job["tag"] + "/beta"]
        row = {
            "n": n,
            "d": d,
            "k": k,
            "constraint": constraint,
            "gamma": gamma,
            "gmi_s": round(gmi_s, 4),
            "learnware_s": round(float(np.median(theirs[job["tag"] + "/seconds"])), 4),
            "gmi_mmd2": mmd_squared(x, ours.points.astype(np.float64), ours.beta, gamma),
            "learnware_mmd2": mmd_squared(x, z.astype(np.float64), beta, gamma),
            "gmi_beta_sum": float(ours.beta.sum()),
            "learnware_beta_sum": float(beta.sum()),
        }
        row["speedup"] = round(row["learnware_s"] / max(row["gmi_s"], 1e-9), 2)
        row["mmd2_ratio"] = round(row["learnware_mmd2"] / max(row["gmi_mmd2"], 1e-300), 2)
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[256, 1024, 4096])
    parser.add_argument("--d", type=int, nargs="+", default=[512, 1280])
    parser.add_argument("--k", type=int, nargs="+", default=[16, 64])
    parser.add_argument(
        "--repeats", type=int, default=3, help="timings per builder and setting (median)"
    )
    parser.add_argument("--venv", default=str(VENV))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    started = time.perf_counter()
    rows = run(args)
    if args.json:
        print(json.dumps(rows))
        return
    print(
        "| n | d | K | constraint | gmi s | learnware s | speed-up | gmi MMD^2 "
        "| learnware MMD^2 | ratio |\n|---|---|---|---|---|---|---|---|---|---|"
    )
    for r in rows:
        print(
            f"| {r['n']} | {r['d']} | {r['k']} | {r['constraint']} | {r['gmi_s']:.3f} | "
            f"{r['learnware_s']:.3f} | {r['speedup']}x | {r['gmi_mmd2']:.3g} | "
            f"{r['learnware_mmd2']:.3g} | {r['mmd2_ratio']}x |"
        )
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
