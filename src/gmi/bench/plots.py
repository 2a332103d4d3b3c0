"""PNG figures for `gmi bench` (matplotlib, headless Agg backend)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from gmi.bench.metrics import TOP_K


def plot_topk(results: dict[str, dict], path: Path, title: str) -> None:
    """Grouped bars: top-1..top-4 accuracy per method."""
    methods = list(results)
    fig, ax = plt.subplots(figsize=(max(7, 1.2 * len(methods)), 4.2))
    width = 0.8 / len(TOP_K)
    x = np.arange(len(methods))
    for i, k in enumerate(TOP_K):
        ax.bar(
            x + (i - 1.5) * width, [results[m][f"top{k}"] for m in methods], width, label=f"top-{k}"
        )
    ax.set_xticks(x, methods, rotation=25, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(ncol=4, fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_gamma(sweep: dict[str, dict[str, list[float]]], factors: list[float], path: Path) -> None:
    """Accuracy against gamma (the paper's Figure 5), one line per method and k in (1, 4)."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for method, series in sweep.items():
        for k, style in (("top1", "-o"), ("top4", "--s")):
            ax.plot(factors, series[k], style, label=f"{method} {k}", markersize=4)
    ax.set_xscale("log")
    ax.set_xlabel("gamma / default gamma (2x median heuristic)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    ax.set_title("Accuracy against the kernel width gamma")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_confusion(matrix: np.ndarray, names: list[str], path: Path, title: str) -> None:
    """Heat map of [true model, top-1 model], rows normalised."""
    rows = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = max(6, 0.28 * len(names) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(rows, cmap="viridis", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_xlabel("top-1 model")
    ax.set_ylabel("true model")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
