"""`gmi bench`: run the protocol, compare the methods, write the report.

For each setting of images per query (1: the paper; 4: several examples per requirement, as
in the follow-up CGI), every method ranks all models for every requirement; ranks of the true
model give top-1..4 accuracy and mean rank, overall, per family and on the swapped pair. A
gamma sweep (0.1x..10x the median heuristic) reproduces the paper's Figure 5.
"""

from __future__ import annotations

import csv
import json
import platform
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from gmi import __version__
from gmi.augment import DEFAULT_AUGMENT
from gmi.bench import metrics
from gmi.bench.data import QUICK_MODELS, BenchData, builtin_data, directory_data
from gmi.bench.methods import (
    DEFAULT_METHOD,
    METHODS,
    PAPER_METHOD,
    BenchContext,
    resolve_method,
)
from gmi.encoders import DEFAULT_ENCODER
from gmi.errors import InvalidInputError
from gmi.interrogators import DEFAULT_INTERROGATOR
from gmi.spec.space import DEFAULT_SPACE, DEFAULT_SPACE_DIMS, SPACES
from gmi.zoo import CATALOGUES

GAMMA_FACTORS = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
QUICK_GAMMA_FACTORS = (0.1, 1.0, 10.0)


def make_groups(query_models: list[int], size: int) -> list[list[int]]:
    """Consecutive queries of the same model, `size` at a time (a remainder is dropped)."""
    groups: list[list[int]] = []
    by_model: dict[int, list[int]] = {}
    for i, m in enumerate(query_models):
        by_model.setdefault(m, []).append(i)
    for m in sorted(by_model):
        idx = by_model[m]
        groups += [idx[s : s + size] for s in range(0, len(idx) - size + 1, size)]
    return groups


def evaluate(
    ctx: BenchContext, methods: list[str], data: BenchData, progress: bool
) -> dict[str, Any]:
    truth = np.array([data.query_models[g[0]] for g in ctx.groups])
    out: dict[str, Any] = {}
    for name in tqdm(
        methods, desc=f"methods x{len(ctx.groups[0])}", disable=not progress, leave=False
    ):
        distances = resolve_method(name)(ctx, 1.0)
        ranks = metrics.true_ranks(distances, truth)
        entry: dict[str, Any] = metrics.summarise(ranks)
        entry["top1_ci95"] = metrics.bootstrap_interval((ranks == 1).astype(float))
        entry["per_family"] = metrics.per_family(ranks, truth, data.families)
        entry["swapped_pairs"] = {
            f"{a}|{b}": metrics.swapped_pair_accuracy(distances, truth, data.names, (a, b))
            for a, b in data.swapped_pairs
        }
        entry["ranks"] = ranks.tolist()  # per requirement: paired comparisons across runs
        entry["_distances"] = distances
        out[name] = entry
    return out


def paired_comparisons(evaluated: dict[str, Any], truth: np.ndarray) -> dict[str, dict]:
    """Top-1 differences of gmi's default and the paper's method against the strong baselines,
    with paired-bootstrap 95% intervals (differences between good methods are small)."""
    out = {}
    for a in (DEFAULT_METHOD, PAPER_METHOD):
        for b in ("knn", "knn-space", "rkme", "kde"):
            if a in evaluated and b in evaluated:
                hits = [metrics.true_ranks(evaluated[m]["_distances"], truth) == 1 for m in (a, b)]
                out[f"{a} - {b}"] = metrics.paired_difference(*hits)
    return out


def interrogation_quality(ctx: BenchContext, data: BenchData) -> dict[str, dict[str, float]]:
    """How well each interrogator recovers the prompt: agreement of the attributes of the
    prompt it names with those of the true prompt (zoo grammar; 1.0 = always right)."""
    from gmi.bench.methods import BUILTIN_INTERROGATORS
    from gmi.zoo.prompts import parse

    truth = [parse(p) for p in data.query_prompts]
    out = {}
    for name in BUILTIN_INTERROGATORS:
        guessed = [parse(t) for t in ctx.interrogated(name)[0]]
        out[name] = {
            attribute: float(
                np.mean(
                    [
                        getattr(g, attribute) == getattr(t, attribute)
                        for g, t in zip(guessed, truth, strict=True)
                    ]
                )
            )
            for attribute in ("subject", "colour", "count", "setting", "time")
        }
    return out


def _known(name: str) -> bool:
    try:
        resolve_method(name)
    except KeyError:
        return False
    return True


@dataclass(frozen=True)
class BenchRequest:
    """One `gmi bench` run: which zoo (a built-in catalogue or an exported directory), which
    methods at which requirement sizes, the encoder and spec views, the split."""

    zoo: str = "builtin"
    methods: list[str] | None = None
    images_per_query: list[int] | None = None
    out_dir: str | Path = "bench-out"
    quick: bool = False
    encoder: str = DEFAULT_ENCODER
    augment: str = DEFAULT_AUGMENT
    queries_per_model: int | None = None
    progress: bool = True
    space: str = DEFAULT_SPACE
    space_dims: int = DEFAULT_SPACE_DIMS
    split: str = "test"

    @property
    def sizes(self) -> list[int]:
        return self.images_per_query or [1, 4]

    def check(self) -> None:
        """Refuse a run that cannot be made, before any work."""
        unknown = [m for m in self.methods or [] if not _known(m)]
        if unknown:
            raise InvalidInputError(f"unknown methods {unknown}; valid: {', '.join(METHODS)}")
        if self.split not in ("test", "val") or (
            self.split == "val" and self.zoo not in CATALOGUES
        ):
            raise InvalidInputError("--split val needs a built-in zoo catalogue")
        if self.space not in SPACES:
            raise InvalidInputError(f"unknown space {self.space!r}; valid: {', '.join(SPACES)}")
        if self.space_dims < 0:
            raise InvalidInputError("--space-dims must be 0 (all) or positive")
        if any(s < 1 for s in self.sizes):
            raise InvalidInputError("--images-per-query must be at least 1")

    def data(self) -> BenchData:
        if self.zoo not in CATALOGUES:
            return directory_data(self.zoo, self.progress)
        qpm = self.queries_per_model or (8 if self.quick else 16)
        quick_models = list(QUICK_MODELS[self.zoo]) if self.quick else None
        return builtin_data(quick_models, qpm, self.progress, catalogue=self.zoo, split=self.split)


def run_bench(request: BenchRequest | None = None, **fields: Any) -> dict[str, Any]:
    """Run the evaluation protocol (`request`, or its fields as keywords) and write the
    results, CSV and plots to its out_dir; returns the results."""
    request = replace(request, **fields) if request is not None else BenchRequest(**fields)
    started = time.perf_counter()
    methods = request.methods or list(METHODS)
    request.check()
    data = request.data()
    out = Path(request.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "gmi_version": __version__,
        "zoo": data.source,
        "encoder": request.encoder,
        "augment": request.augment,
        "space": request.space,
        "space_dims": request.space_dims,
        "split": request.split,
        "interrogator_default": DEFAULT_INTERROGATOR,
        "default_method": DEFAULT_METHOD,
        "paper_method": PAPER_METHOD,
        "quick": request.quick,
        "models": data.names,
        "families": data.families,
        "n_queries": len(data.query_images),
        "machine": {"python": sys.version.split()[0], "platform": platform.platform()},
        "settings": {},
    }
    base = BenchContext(
        data,
        request.encoder,
        make_groups(data.query_models, 1),
        augment=request.augment,
        progress=request.progress,
        space=request.space,
        space_dims=request.space_dims,
    )
    for size in request.sizes:
        results["settings"][str(size)] = _setting(base, data, methods, size, request.progress)
    if request.zoo in CATALOGUES:
        results["interrogation"] = interrogation_quality(base, data)
    results["gamma_sweep"] = _gamma_sweep(base, data, methods, request)
    results["runtime_s"] = round(time.perf_counter() - started, 1)
    write_outputs(results, data, out)
    return results


def _setting(
    base: BenchContext, data: BenchData, methods: list[str], size: int, progress: bool
) -> dict[str, Any]:
    """Every method at one requirement size (`size` images per query)."""
    groups = make_groups(data.query_models, size)
    if not groups:
        raise InvalidInputError(f"too few queries per model for {size} images per query")
    ctx = base.with_groups(groups)  # shares the encoded features and built indexes
    setting: dict[str, Any] = {
        "images_per_query": size,
        "requirements": len(groups),
        "methods": evaluate(ctx, methods, data, progress),
    }
    truth = np.array([data.query_models[g[0]] for g in groups])
    setting["paired_top1"] = paired_comparisons(setting["methods"], truth)
    return setting


def _gamma_sweep(
    base: BenchContext, data: BenchData, methods: list[str], request: BenchRequest
) -> dict[str, Any]:
    """Top-1/top-4 of the kernel methods over gamma factors (one image per query)."""
    factors = QUICK_GAMMA_FACTORS if request.quick else GAMMA_FACTORS
    sweep_methods = [m for m in ("rkme", PAPER_METHOD, DEFAULT_METHOD) if m in methods]
    truth1 = np.array(data.query_models)
    sweep: dict[str, dict[str, list[float]]] = {}
    for name in tqdm(sweep_methods, desc="gamma sweep", disable=not request.progress, leave=False):
        series: dict[str, list[float]] = {"top1": [], "top4": []}
        for f in factors:
            summary = metrics.summarise(metrics.true_ranks(METHODS[name](base, f), truth1))
            series["top1"].append(summary["top1"])
            series["top4"].append(summary["top4"])
        sweep[name] = series
    return {"factors": list(factors), "base_gamma": base.base_gamma(), "methods": sweep}


def markdown_table(results: dict[str, Any]) -> str:
    lines = []
    for size, setting in results["settings"].items():
        lines.append(f"\n### {size} image(s) per query ({setting['requirements']} requirements)\n")
        pairs = next(iter(setting["methods"].values()))["swapped_pairs"]
        pair_head = "".join(f" | swapped pair {p.split('|')[0]}/{p.split('|')[1]}" for p in pairs)
        lines.append(
            f"| method | top-1 | top-1 95% CI | top-2 | top-3 | top-4 | mean rank{pair_head} |"
        )
        lines.append("|---" * (7 + len(pairs)) + "|")
        for name, r in setting["methods"].items():
            lo, hi = r["top1_ci95"]
            pair_cells = "".join(
                f" | {v.get('pairwise', float('nan')):.2f}" for v in r["swapped_pairs"].values()
            )
            lines.append(
                f"| {name} | {r['top1']:.3f} | {lo:.3f}-{hi:.3f} | {r['top2']:.3f} | "
                f"{r['top3']:.3f} | {r['top4']:.3f} | {r['mean_rank']:.2f}{pair_cells} |"
            )
        if setting.get("paired_top1"):
            lines.append("\nPaired top-1 differences (95% paired-bootstrap interval):\n")
            for label, c in setting["paired_top1"].items():
                lines.append(
                    f"- {label}: {c['difference']:+.3f} "
                    f"[{c['ci95_low']:+.3f}, {c['ci95_high']:+.3f}]"
                )
    setting = results["settings"][next(iter(results["settings"]))]
    families = list(next(iter(setting["methods"].values()))["per_family"])
    lines.append(f"\n### Top-1 per family ({next(iter(results['settings']))} image per query)\n")
    lines.append("| method | " + " | ".join(families) + " |")
    lines.append("|---" * (len(families) + 1) + "|")
    for name, r in setting["methods"].items():
        lines.append(
            f"| {name} | "
            + " | ".join(f"{r['per_family'][f]['top1']:.2f}" for f in families)
            + " |"
        )
    sweep = results["gamma_sweep"]
    lines.append(
        "\n### Top-1 / top-4 against gamma (factor x the default: 2x the median heuristic)\n"
    )
    lines.append("| method | " + " | ".join(f"{f}x" for f in sweep["factors"]) + " |")
    lines.append("|---" * (len(sweep["factors"]) + 1) + "|")
    for name, s in sweep["methods"].items():
        lines.append(
            f"| {name} | "
            + " | ".join(f"{a:.2f} / {b:.2f}" for a, b in zip(s["top1"], s["top4"], strict=True))
            + " |"
        )
    return "\n".join(lines) + "\n"


def write_outputs(results: dict[str, Any], data: BenchData, out: Path) -> None:
    from gmi.bench import plots

    table = markdown_table(results)
    distances = {
        size: {m: r.pop("_distances") for m, r in s["methods"].items()}
        for size, s in results["settings"].items()
    }
    (out / "results.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    (out / "report.md").write_text(table, encoding="utf-8")
    with open(out / "results.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "images_per_query",
                "method",
                "top1",
                "top1_ci_low",
                "top1_ci_high",
                "top2",
                "top3",
                "top4",
                "mean_rank",
            ]
        )
        for size, setting in results["settings"].items():
            for name, r in setting["methods"].items():
                writer.writerow(
                    [
                        size,
                        name,
                        r["top1"],
                        *r["top1_ci95"],
                        r["top2"],
                        r["top3"],
                        r["top4"],
                        r["mean_rank"],
                    ]
                )
    for size, setting in results["settings"].items():
        plots.plot_topk(
            setting["methods"],
            out / f"topk-{size}.png",
            f"Top-k accuracy, {size} image(s) per query, {len(data.names)} models",
        )
    plots.plot_gamma(
        results["gamma_sweep"]["methods"], results["gamma_sweep"]["factors"], out / "gamma.png"
    )
    first = next(iter(results["settings"]))
    if DEFAULT_METHOD in distances[first]:
        truth = np.array(data.query_models)
        matrix = metrics.confusion(distances[first][DEFAULT_METHOD], truth, len(data.names))
        plots.plot_confusion(
            matrix,
            data.names,
            out / "confusion.png",
            f"{DEFAULT_METHOD}: true model vs top-1 model",
        )
    results["report_markdown"] = table
