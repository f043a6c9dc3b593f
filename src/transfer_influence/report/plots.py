"""The report's figures (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.offsetbox import AnnotationBbox, OffsetImage  # noqa: E402

from ..analysis.baselines import BaselineSummary  # noqa: E402
from ..analysis.convergence import Diagnostics  # noqa: E402
from ..analysis.rankings import top_and_bottom  # noqa: E402
from ..estimate import ESTIMATOR_NAMES, InfluenceEstimate  # noqa: E402
from ..evaluate.reliability import LEVEL_NAMES  # noqa: E402
from .tables import class_label as _label  # noqa: E402


def plot_overall(influence: InfluenceEstimate, thumbs: dict[str, np.ndarray], k: int, path: Path) -> None:
    """Top and bottom k classes by overall influence, with 95% intervals and thumbnails (Figure 1)."""
    best, worst = top_and_bottom(influence, 0, k)
    rows = best + worst[::-1]
    fig, ax = plt.subplots(figsize=(8, 0.32 * len(rows) + 1.5))
    y = np.arange(len(rows))[::-1]
    values = np.array([r.influence for r in rows])
    errors = influence.critical_value(0.95) * np.array([r.stderr for r in rows])
    colours = ["#2b8cbe" if v >= 0 else "#e34a33" for v in values]
    ax.barh(y, values, xerr=errors, color=colours, error_kw={"elinewidth": 0.8, "ecolor": "#444"})
    ax.set_yticks(y, [_label(r.name) for r in rows])
    ax.axvline(0, color="black", linewidth=0.6)
    what = "influence" if influence.estimator == "dim" else "ridge coefficient"
    ax.set_xlabel(f"{what} on mean {influence.output_kind} over all target examples (±95% CI)")
    ax.set_title(f"Most positive and negative source classes ({influence.num_models} models, {ESTIMATOR_NAMES[influence.estimator]})")
    # Tick labels are pushed left to leave room for each class's thumbnail beside the axis.
    ax.tick_params(axis="y", pad=26)
    for yi, row in zip(y, rows):
        if row.name in thumbs:
            box = OffsetImage(thumbs[row.name], zoom=0.55, cmap="gray")
            ax.add_artist(
                AnnotationBbox(
                    box, (0, yi), xybox=(-13, 0), xycoords=("axes fraction", "data"),
                    boxcoords="offset points", frameon=False, annotation_clip=False,
                )
            )
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_per_target_class(influence: InfluenceEstimate, thumbs: dict[str, np.ndarray], k: int, path: Path) -> None:
    """For each target class, its k most positive and k most negative source classes (Figure 3)."""
    targets = influence.target_ids
    fig, axes = plt.subplots(len(targets), 2 * k, figsize=(1.05 * 2 * k + 1, 1.15 * len(targets)), squeeze=False)
    for row, target in enumerate(targets):
        best, worst = top_and_bottom(influence, row, k)
        for col, entry in enumerate(best + worst):
            ax = axes[row, col]
            ax.set_xticks([])
            ax.set_yticks([])
            if entry.name in thumbs:
                ax.imshow(thumbs[entry.name], cmap="gray")
            colour = "#2b8cbe" if col < len(best) else "#e34a33"
            ax.set_title(f"{_label(entry.name)} {entry.influence:+.3f}", fontsize=7, color=colour)
            for spine in ax.spines.values():
                spine.set_color(colour)
        axes[row, 0].set_ylabel(f"target {_label(target)}", fontsize=9, rotation=0, ha="right", va="center")
    fig.suptitle("Per target class: most positive (blue) and most negative (red) source classes", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def plot_baselines(summary: BaselineSummary, path: Path) -> None:
    labels = list(summary.rows)
    means = [summary.rows[k][0] for k in labels]
    stds = [summary.rows[k][1] for k in labels]
    fig, ax = plt.subplots(figsize=(7, 0.6 * len(labels) + 1))
    ax.barh(range(len(labels)), means, xerr=stds, color="#74a9cf")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("target test accuracy (mean ± std over seeds/models)")
    lo = max(0.0, min(means) - 0.1)
    ax.set_xlim(lo, min(1.0, max(means) + 0.05))
    for i, m in enumerate(means):
        ax.text(m, i, f" {m:.3f}", va="center", fontsize=8)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_reliability(diag: Diagnostics, kind: str, path: Path) -> None:
    """Split-half Spearman against models per half, measured and Spearman–Brown fit, per level."""
    estimators = [est for (k, est) in diag.reliability if k == kind]
    fig, axes = plt.subplots(1, len(estimators), figsize=(5.2 * len(estimators), 3.8), squeeze=False)
    colours = {"overall": "#1b9e77", "target_class": "#d95f02", "example": "#7570b3"}
    for ax, est in zip(axes[0], estimators):
        for level, curve in diag.reliability[(kind, est)].items():
            h = curve.models_per_half
            ax.errorbar(h, curve.spearman, yerr=curve.spread, fmt="o", color=colours[level], label=LEVEL_NAMES[level])
            if np.isfinite(curve.spearman_brown_c):
                grid = np.geomspace(h[0], max(h[-1] * 8, 10), 60)
                ax.plot(grid, grid / (grid + curve.spearman_brown_c), color=colours[level], alpha=0.6)
        ax.axhline(diag.target_reliability, color="grey", linestyle=":", linewidth=1)
        ax.set_xscale("log")
        ax.set_ylim(0, 1)
        ax.set_xlabel("models per half")
        ax.set_ylabel("split-half Spearman")
        ax.set_title(f"{kind}, estimator {est}")
        ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_bootstrap_and_knockoffs(diag: Diagnostics, path: Path) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    if diag.bootstrap is not None:
        left.plot(diag.bootstrap.models, diag.bootstrap.mean_std, "o-")
        left.set_xscale("log")
        left.set_yscale("log")
        left.xaxis.set_minor_formatter(plt.NullFormatter())  # minor labels overlap
        left.set_xlabel("models")
        left.set_ylabel("bootstrap std of overall influence\n(mean over classes)")
        left.set_title("Bootstrap error (paper Fig. 8)")
    if diag.knockoffs is not None:
        ko = diag.knockoffs
        right.plot(ko.top_k, ko.share_positive, color="#2b8cbe", label="knockoff share, most positive")
        right.plot(ko.top_k, ko.share_negative, color="#e34a33", label="knockoff share, most negative")
        right.plot(ko.top_k, ko.fdr_plus_positive, color="#2b8cbe", linestyle="--", label="knockoff+ FDR, most positive")
        right.plot(ko.top_k, ko.fdr_plus_negative, color="#e34a33", linestyle="--", label="knockoff+ FDR, most negative")
        right.axhline(0.5, color="grey", linestyle=":", linewidth=1, label="chance (knockoff share)")
        right.set_xlabel("k")
        right.set_ylabel("share of knockoffs in the joint top k (solid)\nknockoff+ FDR of the top k real (dashed)")
        right.set_ylim(0, 1.05)
        right.set_title("Knockoffs in the top k (paper Fig. 30)")
        right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
