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
    """For each target class, its k most positive and k most negative source classes (Figure 3);
    k is at most half the classes, as ``top_and_bottom`` takes it (no empty columns on small sources)."""
    targets = influence.target_ids
    k = min(k, len(influence.unit_names) // 2)
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


def plot_reliability(diag: Diagnostics, kind: str, path: Path) -> bool:
    """Split-half Spearman against models per half, measured and Spearman–Brown fit, per level.

    Returns whether a figure was drawn: none when no split half could be measured (a study too
    small for them; ``diag.notes`` says so), rather than an empty log-scaled plot."""
    estimators = [est for (k, est) in diag.reliability if k == kind]
    measured = [est for est in estimators if any(c.models_per_half.size for c in diag.reliability[(kind, est)].values())]
    if not measured:
        return False
    estimators = measured
    fig, axes = plt.subplots(1, len(estimators), figsize=(5.2 * len(estimators), 3.8), squeeze=False)
    colours = {"overall": "#1b9e77", "target_class": "#d95f02", "example": "#7570b3"}
    for ax, est in zip(axes[0], estimators):
        for level, curve in diag.reliability[(kind, est)].items():
            h = curve.models_per_half
            if not h.size:
                continue
            ax.errorbar(h, curve.spearman, yerr=curve.spread, fmt="o", color=colours[level], label=LEVEL_NAMES[level])
            if np.isfinite(curve.spearman_brown_c):
                grid = np.geomspace(h[0], max(h[-1] * 8, 10), 60)
                ax.plot(grid, grid / (grid + curve.spearman_brown_c), color=colours[level], alpha=0.6)
        ax.axhline(diag.target_reliability, color="grey", linestyle=":", linewidth=1)
        ax.set_xscale("log")
        lowest = min((float((c.spearman - c.spread).min()) for c in diag.reliability[(kind, est)].values() if c.spearman.size),
                     default=0.0)
        ax.set_ylim(min(0.0, lowest - 0.05), 1)  # a negative split-half Spearman is shown, not clipped
        ax.set_xlabel("models per half")
        ax.set_ylabel("split-half Spearman")
        ax.set_title(f"{kind}, estimator {est}")
        ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def plot_bootstrap_and_knockoffs(diag: Diagnostics, path: Path) -> None:
    """Bootstrap error against models (left) and knockoff shares against k (right); a panel whose
    diagnostic was skipped says so in place of its curves."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, missing in ((left, diag.bootstrap is None or not np.isfinite(diag.bootstrap.mean_std).any()),
                        (right, diag.knockoffs is None)):
        if missing:
            ax.axis("off")
            ax.text(0.5, 0.5, "not measured on this study\n(see the notes of the diagnostics)", ha="center", va="center",
                    fontsize=9, color="#555")
    if diag.bootstrap is not None and np.isfinite(diag.bootstrap.mean_std).any():
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


from ..analysis.debugging import Explanation  # noqa: E402
from ..analysis.projection import SourceProjection, StudyImages, TargetClassProjection  # noqa: E402


def _displayable(image: np.ndarray) -> np.ndarray:
    """A stored (channels, height, width) uint8 image as imshow takes it: 2-D grey or HWC in [0, 1]."""
    return image[0] if image.shape[0] == 1 else np.transpose(image, (1, 2, 0)) / 255.0


def _image_cell(ax, image: np.ndarray | None, title: str, colour: str = "black", fontsize: float = 6.5) -> None:  # type: ignore[no-untyped-def]
    ax.set_xticks([])
    ax.set_yticks([])
    if image is None:
        ax.axis("off")
        return
    ax.imshow(_displayable(image), cmap="gray")
    ax.set_title(title, fontsize=fontsize, color=colour)
    for spine in ax.spines.values():
        spine.set_color(colour)


def plot_source_projection(projection: SourceProjection, images: StudyImages, path: Path, source_count: int = 4) -> None:
    """A source class's own images beside the target images it helps most and hurts most (Figures 4–5)."""
    source = list(images.source_examples(projection.class_index, source_count))
    ends = (("most positive", projection.most_positive, "#2b8cbe"), ("most negative", projection.most_negative, "#e34a33"))
    width = max(len(source), *(len(entries) for _, entries, _ in ends), 1)
    fig, axes = plt.subplots(3, width, figsize=(1.05 * width + 1.4, 3.9), squeeze=False)
    for col in range(width):
        _image_cell(axes[0, col], source[col] if col < len(source) else None, "")
    for row, (_, entries, colour) in enumerate(ends, start=1):
        for col in range(width):
            if col < len(entries):
                entry = entries[col]
                title = f"{_label(entry.true_label)} {entry.influence:+.3f}"
                _image_cell(axes[row, col], images.target_images[entry.index], title, colour)
            else:
                _image_cell(axes[row, col], None, "")
    for row, label in enumerate(["own source images", *(name for name, _, _ in ends)]):
        axes[row, 0].axis("on")
        axes[row, 0].set_ylabel(label, fontsize=8, rotation=0, ha="right", va="center")
    fig.suptitle(
        f"Source class {_label(projection.source_class)}: target images it influences most "
        f"({projection.output_kind}, {ESTIMATOR_NAMES[projection.estimator]}, {projection.num_models} models; "
        "titles: true label, influence)", fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def plot_target_projection(
    projection: TargetClassProjection, images: StudyImages, thumbs: dict[str, np.ndarray], path: Path, per_group: int = 8
) -> None:
    """One row per source class: the images of the target class it influences most (Figure 5)."""
    groups = projection.groups
    if not groups:
        fig, ax = plt.subplots(figsize=(6, 1.2))
        ax.axis("off")
        ax.text(0.5, 0.5, f"no source class influences any image of {_label(projection.target_class)} positively",
                ha="center", va="center", fontsize=9)
        fig.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(fig)
        return
    width = 1 + min(per_group, max(len(g.members) for g in groups))
    fig, axes = plt.subplots(len(groups), width, figsize=(1.05 * width + 1.4, 1.2 * len(groups) + 0.6), squeeze=False)
    for row, group in enumerate(groups):
        _image_cell(axes[row, 0], None, "")
        if group.source_class in thumbs:
            axes[row, 0].axis("on")
            axes[row, 0].imshow(thumbs[group.source_class], cmap="gray")
            axes[row, 0].set_xticks([])
            axes[row, 0].set_yticks([])
        axes[row, 0].set_ylabel(f"{_label(group.source_class)}\n({len(group.members)} images)", fontsize=8,
                                rotation=0, ha="right", va="center")
        for col in range(1, width):
            members = group.members
            if col - 1 < len(members):
                entry = members[col - 1]
                _image_cell(axes[row, col], images.target_images[entry.index], f"{entry.influence:+.3f}", "#2b8cbe")
            else:
                _image_cell(axes[row, col], None, "")
    shown = sum(len(g.members) for g in groups)
    fig.suptitle(
        f"Target class {_label(projection.target_class)}: the source class with the largest positive influence on each "
        f"image ({shown} images grouped, {len(projection.unclaimed)} with none positive)", fontsize=9, y=1.01,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def plot_explanations(explanations: list[Explanation], images: StudyImages, path: Path, title: str) -> None:
    """Each explained target image beside its most negative source classes with 95% intervals (Figure 6, left)."""
    count = max(len(explanations), 1)
    fig, axes = plt.subplots(count, 2, figsize=(9, 1.9 * count + 0.4), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 4.5]})
    for row, explanation in enumerate(explanations):
        _image_cell(
            axes[row, 0], images.target_images[explanation.index],
            f"{explanation.target_id}\ntrue {_label(explanation.true_label)}, right in {explanation.accuracy:.0%}",
            fontsize=7,
        )
        ax = axes[row, 1]
        suspects = explanation.suspects
        y = np.arange(len(suspects))[::-1]
        values = np.array([s.influence for s in suspects])
        errors = np.array([[s.influence - s.ci95_low for s in suspects], [s.ci95_high - s.influence for s in suspects]])
        ax.barh(y, values, xerr=errors, color="#e34a33", error_kw={"elinewidth": 0.8, "ecolor": "#444"})
        ax.set_yticks(y, [
            f"{_label(s.name)}: accuracy {s.accuracy_with:.2f} / {s.accuracy_without:.2f}, "
            f"p_true {s.p_true_with:.2f} / {s.p_true_without:.2f}" for s in suspects
        ], fontsize=7)
        ax.axvline(0, color="black", linewidth=0.6)
        ax.tick_params(axis="x", labelsize=7)
    axes[-1, 1].set_xlabel(
        f"influence on {explanations[0].output_kind if explanations else ''} of the image (±95% CI); "
        "labels: models with / without the class", fontsize=8
    )
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


from ..analysis.counterfactual import CounterfactualResult  # noqa: E402


def plot_counterfactual(result: CounterfactualResult, path: Path) -> None:
    """Target accuracy after removing the top, bottom and random k classes against k (mean ± std over
    the paired seeds), the full source as a band (paper Figure 2a); the significance rule as a point."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    full = result.full
    ks = sorted({a.arm.k for a in result.arms if a.arm.selection in ("top", "bottom", "random", "worst_pair")})
    # The significance rule's k is whatever the test selects: the axis must reach it too.
    every_k = ks + [a.arm.k for a in result.arms if a.arm.selection in ("significant", "whatif", "planted") and a.arm.k > 0]
    span = (min(every_k, default=0) - 0.5, max(every_k, default=1) + 0.5)
    ax.axhspan(full.mean - full.std, full.mean + full.std, color="grey", alpha=0.2, linewidth=0)
    ax.axhline(full.mean, color="grey", linewidth=1, label=f"full source ({full.mean:.3f} ± {full.std:.3f})")
    styles = {
        "top": ("#2b8cbe", "remove most positive k", -1),
        "bottom": ("#e34a33", "remove most negative k", 0),
        "random": ("#555555", "remove random k", 1),
        "worst_pair": ("#ff7f00", "remove k most negative on a single image", 2),
    }
    # The three selections share every k: nudged apart so that their error bars stay readable.
    dodge = 0.08 * (min(np.diff(ks)) if len(ks) > 1 else 1)
    for selection, (colour, label, side) in styles.items():
        arms = sorted((a for a in result.arms if a.arm.selection == selection), key=lambda a: a.arm.k)
        if arms:
            ax.errorbar([a.arm.k + side * dodge for a in arms], [a.mean for a in arms], yerr=[a.std for a in arms],
                        fmt="o-", color=colour, capsize=3, label=label)
    ax.set_xticks(sorted(set(every_k)))
    for a in result.arms:
        if a.arm.selection == "significant" and a.arm.k > 0:
            ax.errorbar([a.arm.k], [a.mean], yerr=[a.std], fmt="D", color="#984ea3", capsize=3,
                        label=f"remove the {a.arm.k} significantly negative (BH)")
        if a.arm.selection == "whatif":
            ax.errorbar([a.arm.k + 2 * dodge], [a.mean], yerr=[a.std], fmt="s", color="#4daf4a", capsize=3,
                        label=f"what-if rule: remove the {a.arm.k} most negative")
        if a.arm.selection == "planted":
            ax.errorbar([a.arm.k - 2 * dodge], [a.mean], yerr=[a.std], fmt="*", color="#a65628", capsize=3,
                        markersize=9, label=f"remove exactly the {a.arm.k} planted mislabels")
    ax.set_xlim(*span)
    ax.set_xlabel(f"source {'examples' if result.unit_kind == 'example' else 'classes'} removed (k)")
    ax.set_ylabel(f"target accuracy on the scoring half\n(mean ± std over {full.accuracy.size} seeds)")
    ranking = result.ranking
    source = "this study" if not result.from_other_study else Path(ranking.source).name
    ax.set_title(f"Counterfactual removal (paper Fig. 2a)\nranking: {ranking.estimator} on {ranking.kind}, "
                 f"from {source} ({ranking.num_models} models)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


from ..analysis.whatif import SweepComparison  # noqa: E402


def plot_whatif_vs_sweep(comparison: SweepComparison, path: Path) -> None:
    """Predicted (what-if) against measured (retrained) change in target accuracy per removed set,
    with the identity line: points below it are removals the datamodel thinks cost more than they do."""
    fig, ax = plt.subplots(figsize=(5.4, 4.6))
    colours = {"top": "#2b8cbe", "bottom": "#e34a33", "significant": "#984ea3", "hand_picked": "#4daf4a"}
    for selection in dict.fromkeys(p.selection for p in comparison.points):
        points = [p for p in comparison.points if p.selection == selection]
        xerr = [p.measured_se if p.measured_se is not None and np.isfinite(p.measured_se) else 0.0 for p in points]
        ax.errorbar([p.measured for p in points], [p.predicted for p in points], xerr=xerr,
                    yerr=[p.predicted_stderr for p in points], fmt="o", capsize=2,
                    color=colours.get(selection, "#555555"), label=f"remove {selection}")
        for p in points:
            ax.annotate(str(p.k), (p.measured, p.predicted), xytext=(4, 3), textcoords="offset points", fontsize=7)
    values = [v for p in comparison.points for v in (p.measured, p.predicted)] + [0.0]
    pad = 0.1 * (max(values) - min(values) or 0.01)
    limits = (min(values) - pad, max(values) + pad)
    ax.plot(limits, limits, color="grey", linewidth=1, linestyle="--", label="identity")
    ax.axhline(0, color="black", linewidth=0.4)
    ax.axvline(0, color="black", linewidth=0.4)
    ax.set_xlim(*limits)
    ax.set_ylim(*limits)
    ax.set_xlabel("measured change in accuracy (retrained, ± paired SE)")
    ax.set_ylabel(f"predicted change (what-if, {comparison.level}, {comparison.scaling}, ± SE)")
    spearman = "n/a" if not np.isfinite(comparison.spearman) else f"{comparison.spearman:.2f}"
    ax.set_title(f"What-if vs retraining: Spearman {spearman}, MAE {comparison.mean_absolute_error:.3f}\n"
                 "(labels: k classes removed)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


from ..analysis.verify import TargetVerification  # noqa: E402


def plot_verification(result: TargetVerification, path: Path) -> None:
    """The image beside how often the retrained models predict each label for it, with and without
    the removed class (paper Figure 6, right); the true label is marked."""
    fig, axes = plt.subplots(1, 2, figsize=(8.6, 2.9), gridspec_kw={"width_ratios": [1, 4]})
    _image_cell(axes[0], result.image, f"{result.target_id}\ntrue {_label(result.true_label_name)}", fontsize=7)
    ax = axes[1]
    labels = np.arange(len(result.target_class_names))
    width = 0.4
    ax.bar(labels - width / 2, result.counts_with / result.repeats, width, color="#999999",
           label=f"full source ({result.correct_with:.0%} correct)")
    ax.bar(labels + width / 2, result.counts_without / result.repeats, width, color="#2b8cbe",
           label=f"without {_label(result.removed)} ({result.correct_without:.0%} correct)")
    ax.set_xticks(labels, [_label(name) for name in result.target_class_names], fontsize=7)
    ax.get_xticklabels()[result.true_label].set_fontweight("bold")
    ax.get_xticklabels()[result.true_label].set_color("#2b8cbe")
    ax.set_ylim(0, 1)
    ax.set_ylabel(f"share of {result.repeats} seeds\npredicting the label", fontsize=8)
    ax.tick_params(axis="y", labelsize=7)
    ax.legend(fontsize=7)
    chosen = "its most negative source class" if result.chosen else "source class"
    ax.set_title(f"Removing {chosen} {_label(result.removed)} (influence {result.influence:+.4f}, "
                 f"{result.output_kind}, {result.estimator}): true label in bold", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


from ..analysis.leaks import LeakPair, LeakRanking  # noqa: E402

LEAK_PAIRS_PER_ROW = 5
"""Pairs side by side in one row of the leak figure before it wraps (each pair is two images)."""


LEAK_ID_CHARS = 22
"""Characters of an example id shown above its image; longer ids keep their end (the distinguishing part)."""


def _short_id(example_id: str) -> str:
    return example_id if len(example_id) <= LEAK_ID_CHARS else "…" + example_id[-(LEAK_ID_CHARS - 1):]


def _leak_rows(pairs: tuple[LeakPair, ...], top: int) -> list[list[LeakPair]]:
    shown = list(pairs[:top])
    return [shown[i : i + LEAK_PAIRS_PER_ROW] for i in range(0, len(shown), LEAK_PAIRS_PER_ROW)] or [[]]


def plot_leak_pairs(ranking: LeakRanking, images: StudyImages, path: Path, top: int = 10) -> None:
    """The ``top`` most positive and most negative (target image, source example) pairs over the
    whole target set, each target beside its source example (paper Figure 7): the target titled
    with its id and label, the source with its id, class and coefficient."""
    ends = (("most positive (candidate leaks)", ranking.positive, "#2b8cbe"),
            ("most negative (candidate mislabeled / misleading)", ranking.negative, "#e34a33"))
    blocks = [(title, colour, row) for title, pairs, colour in ends for row in _leak_rows(pairs, top)]
    width = 2 * max(1, min(top, LEAK_PAIRS_PER_ROW))
    fig, axes = plt.subplots(len(blocks), width, figsize=(1.05 * width + 1.6, 1.45 * len(blocks) + 0.5), squeeze=False)
    for row, (title, colour, pairs) in enumerate(blocks):
        for slot in range(width // 2):
            target_ax, source_ax = axes[row, 2 * slot], axes[row, 2 * slot + 1]
            if slot >= len(pairs):
                _image_cell(target_ax, None, "")
                _image_cell(source_ax, None, "")
                continue
            pair = pairs[slot]
            _image_cell(target_ax, images.target_images[pair.target_index],
                        f"#{pair.rank} {_short_id(pair.target_id)}\ntarget {_label(pair.target_label)}", fontsize=6)
            _image_cell(source_ax, images.source_images[pair.source_index],
                        f"{_short_id(pair.source_id)}\n{_label(pair.source_class)} {pair.coefficient:+.3f}", colour, fontsize=6)
        axes[row, 0].axis("on")
        axes[row, 0].set_xticks([])
        axes[row, 0].set_yticks([])
        axes[row, 0].set_ylabel(title.replace(" (", "\n("), fontsize=7, rotation=0, ha="right", va="center", color=colour)
    fig.suptitle(
        f"Source examples with the strongest coefficients on a target image ({ranking.output_kind}, {ranking.estimator}, "
        f"{ranking.num_models} models): target left, source right with its class and coefficient", fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


from ..analysis.planted import PlantedScore  # noqa: E402


def plot_planted_curve(scores: list[PlantedScore], path: Path) -> None:
    """Detection of planted faults against the number of models, one line per estimator: the share
    of planted leaks in the top k of their own target image (left), and the enrichment of planted
    mislabels among the most negative source examples over random flagging (right, log scale)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.5, 3.6))
    for estimator in dict.fromkeys(s.estimator for s in scores):
        mine = [s for s in scores if s.estimator == estimator]
        models = [s.num_models for s in mine]
        left.plot(models, [s.leak_recall() for s in mine], marker="o", label=estimator)
        right.plot(models, [s.enrichment(s.mislabel_hits_min) for s in mine], marker="o", label=f"{estimator}, most negative pair")
        right.plot(models, [s.enrichment(s.mislabel_hits_sum) for s in mine], marker="s", linestyle="--",
                   label=f"{estimator}, summed effect")
    k = scores[0].top_k
    left.axhline(0.9, color="grey", linestyle=":", linewidth=1)
    left.set(xscale="log", ylim=(0, 1.02), xlabel="models", ylabel=f"planted leaks in their image's top {k}",
             title="leaks found")
    right.axhline(1.0, color="grey", linestyle=":", linewidth=1)
    right.set(xscale="log", yscale="log", xlabel="models", ylabel="enrichment over random",
              title=f"mislabels among the {scores[0].num_mislabels} most negative")
    left.legend(fontsize=8)
    right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
