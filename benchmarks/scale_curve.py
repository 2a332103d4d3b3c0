"""The latency-vs-hub-size curve: benchmarks/scale.py for several M and backends, one table
(docs/performance/scale.json) and one plot (docs/performance/latency-vs-models.png).

    .venv/bin/python benchmarks/scale_curve.py [--models 100 1000 10000]
        [--backends numpy torch] [--device cpu] [--out docs/performance]

Each point is a separate `scale.py --json` process (fresh RSS and open-time figures) with
scale.py's defaults, i.e. the configuration a new registry uses (each row's "config" says
which); the hubs are cached, so a second run only measures.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--backends", nargs="+", default=["numpy", "torch"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--queries", type=int, default=64)
    parser.add_argument("--out", type=Path, default=Path("docs/performance"))
    parser.add_argument(
        "--add", type=Path, help="append the scale.py --json row in this file, then re-plot"
    )
    args = parser.parse_args()
    if args.add:
        rows = json.loads((args.out / "scale.json").read_text())
        rows.append(json.loads(args.add.read_text()))
        (args.out / "scale.json").write_text(json.dumps(rows, indent=1) + "\n")
        plot(rows, args.out / "latency-vs-models.png")
        return
    rows = []
    for backend in args.backends:
        for m in args.models:
            done = subprocess.run(
                [
                    sys.executable,
                    str(Path(__file__).with_name("scale.py")),
                    "--models",
                    str(m),
                    "--queries",
                    str(args.queries),
                    "--backend",
                    backend,
                    "--device",
                    args.device,
                    "--json",
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            row = json.loads(done.stdout)
            rows.append(row)
            print(json.dumps(row), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scale.json").write_text(json.dumps(rows, indent=1) + "\n")
    plot(rows, args.out / "latency-vs-models.png")


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for backend in sorted({r["backend"] for r in rows}):
        mine = sorted((r for r in rows if r["backend"] == backend), key=lambda r: r["models"])
        label = f"{backend} ({mine[0]['device']})"
        ax.plot(
            [r["models"] for r in mine], [r["p50_ms"] for r in mine], "o-", label=f"{label} p50"
        )
        ax.plot(
            [r["models"] for r in mine],
            [r["p95_ms"] for r in mine],
            "x--",
            alpha=0.6,
            label=f"{label} p95",
        )
        ax.plot(
            [r["models"] for r in mine],
            [r["batch32_ms"] for r in mine],
            "s:",
            alpha=0.6,
            label=f"{label} per query, batch of 32",
        )
    ax.axhline(20, color="grey", lw=0.8, ls=":", label="target at 10^4 models: 20 ms")
    ax.set_xscale("log")
    ax.set_yscale("log")
    config = rows[0].get("config", {})
    what = f"{config.get('encoder', '?')}, r = {config.get('dims', '?')} {config.get('dtype', '')}"
    points = sorted({r["images_per_model"] for r in rows})
    ax.set_xlabel(f"models in the hub ({what}; {'/'.join(map(str, points))} spec points each)")
    ax.set_ylabel("exact score latency per query (ms)")
    ax.set_title("gmi exact scoring vs hub size (2-core CPU)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
