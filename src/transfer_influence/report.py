"""The study report: PNG figures, CSV tables and one self-contained static HTML page."""

from __future__ import annotations

import base64
import csv
import html
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.offsetbox import AnnotationBbox, OffsetImage  # noqa: E402

from .analysis import (  # noqa: E402
    ESTIMATOR_NAMES,
    BaselineSummary,
    LookalikeCheck,
    baseline_summary,
    lookalike_check,
    overall_influence,
    per_target_class_influence,
    ranked,
    top_and_bottom,
)
from .convergence import Diagnostics, diagnose  # noqa: E402
from .diagnostics import LEVEL_NAMES, significant_classes  # noqa: E402
from .estimators import ClassInfluence  # noqa: E402
from .results import StudyResults, open_study  # noqa: E402
from .store import DATA_FILE  # noqa: E402

REPORT_DIR = "report"
SEEDING_TEXT = {
    "independent": "each model its own initialisation and data-order seed",
    "common": "one seed for every model",
    "block": "one seed per design block, shared by models that together hold every class once",
}


def class_thumbnails(study_dir: Path) -> dict[str, np.ndarray]:
    """One representative image per source class: the training example nearest the class mean."""
    with np.load(study_dir / DATA_FILE, allow_pickle=False) as archive:
        images = archive["source_train__images"]
        labels = archive["source_train__labels"]
        names = [str(c) for c in archive["source_train__classes"]]
    thumbs: dict[str, np.ndarray] = {}
    for k, name in enumerate(names):
        members = images[labels == k].astype(np.float32)
        if not len(members):
            continue
        centre = members.mean(axis=0)
        best = int(np.argmin(((members - centre) ** 2).reshape(len(members), -1).sum(axis=1)))
        image = members[best]
        thumbs[name] = image[0] if image.shape[0] == 1 else np.transpose(image, (1, 2, 0)) / 255.0
    return thumbs


def _label(name: str) -> str:
    return f"'{name}'" if len(name) == 1 else name


def plot_overall(influence: ClassInfluence, thumbs: dict[str, np.ndarray], k: int, path: Path) -> None:
    """Top and bottom k classes by overall influence, with 95% intervals and thumbnails (Figure 1)."""
    best, worst = top_and_bottom(influence, 0, k)
    rows = best + worst[::-1]
    fig, ax = plt.subplots(figsize=(8, 0.32 * len(rows) + 1.5))
    y = np.arange(len(rows))[::-1]
    values = np.array([r.influence for r in rows])
    errors = 1.96 * np.array([r.stderr for r in rows])
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


def plot_per_target_class(influence: ClassInfluence, thumbs: dict[str, np.ndarray], k: int, path: Path) -> None:
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
        left.set_xlabel("models")
        left.set_ylabel("bootstrap std of overall influence\n(mean over classes)")
        left.set_title("Bootstrap error (paper Fig. 8)")
    if diag.knockoffs is not None:
        right.plot(diag.knockoffs.top_k, diag.knockoffs.fdr_positive, label="top-k most positive")
        right.plot(diag.knockoffs.top_k, diag.knockoffs.fdr_negative, label="top-k most negative")
        right.set_xlabel("k")
        right.set_ylabel("estimated false-discovery rate")
        right.set_ylim(0, 1.05)
        right.set_title("Knockoff FDR (paper Fig. 30)")
        right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_overall_csv(influence: ClassInfluence, path: Path) -> None:
    with open(path, "w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["rank", "source_class", "influence", "stderr", "ci95_low", "ci95_high", "n_in", "n_out"])
        for rank, row in enumerate(ranked(influence, 0), start=1):
            out.writerow(
                [rank, row.name, f"{row.influence:.6g}", f"{row.stderr:.6g}", f"{row.influence - 1.96 * row.stderr:.6g}",
                 f"{row.influence + 1.96 * row.stderr:.6g}", influence.n_in[row.index], influence.n_out[row.index]]
            )


def write_per_target_csv(influence: ClassInfluence, path: Path) -> None:
    with open(path, "w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["target_class", "rank", "source_class", "influence", "stderr"])
        for column, target in enumerate(influence.target_ids):
            for rank, row in enumerate(ranked(influence, column), start=1):
                out.writerow([target, rank, row.name, f"{row.influence:.6g}", f"{row.stderr:.6g}"])


def write_baselines_csv(summary: BaselineSummary, path: Path) -> None:
    with open(path, "w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["backbone", "target_accuracy_mean", "target_accuracy_std", "count"])
        for label, (mean, std, count) in summary.rows.items():
            out.writerow([label, f"{mean:.4f}", f"{std:.4f}", count])


@dataclass
class Report:
    directory: Path
    html_path: Path
    overall: ClassInfluence
    per_target_class: ClassInfluence
    baselines: BaselineSummary
    lookalikes: LookalikeCheck | None
    diagnostics: Diagnostics | None


def build_report(
    study_dir: str | Path,
    kind: str | None = None,
    estimator: str | None = None,
    top_k: int = 15,
    per_class_k: int = 5,
    diagnostics: bool = True,
) -> Report:
    """Figures, tables and report.html; output kind and estimator default to the config's ``analysis``."""
    study_dir = Path(study_dir)
    results = open_study(study_dir)
    kind = kind or results.config.analysis.output_kind
    estimator = estimator or results.config.analysis.estimator
    if results.num_models < 3:
        raise ValueError(f"{study_dir} has {results.num_models} finished models; a report needs at least 3")
    out = study_dir / REPORT_DIR
    out.mkdir(exist_ok=True)
    overall = overall_influence(results, kind, estimator)
    per_class = per_target_class_influence(results, kind, estimator)
    baselines = baseline_summary(results)
    thumbs = class_thumbnails(study_dir)
    plot_overall(overall, thumbs, top_k, out / "overall_influence.png")
    plot_per_target_class(per_class, thumbs, per_class_k, out / "per_target_class.png")
    plot_baselines(baselines, out / "baselines.png")
    write_overall_csv(overall, out / "overall_influence.csv")
    write_per_target_csv(per_class, out / "per_target_class_influence.csv")
    write_baselines_csv(baselines, out / "baselines.csv")
    lookalikes = lookalike_check(per_class, top_k=3)
    diag = None
    if diagnostics and results.num_models >= 8:
        diag = diagnose(results, kinds=results.output_kinds, primary=(kind, estimator), repeats=3)
        diag.save(out / "diagnostics.json")
        plot_reliability(diag, kind, out / "reliability.png")
        plot_bootstrap_and_knockoffs(diag, out / "bootstrap_knockoffs.png")
    html_path = out / "report.html"
    html_path.write_text(_html(results, overall, per_class, baselines, lookalikes, diag, out, per_class_k))
    return Report(out, html_path, overall, per_class, baselines, lookalikes, diag)


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(path.stem)}">'


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _html(
    results: StudyResults,
    overall: ClassInfluence,
    per_class: ClassInfluence,
    baselines: BaselineSummary,
    lookalikes: LookalikeCheck | None,
    diag: Diagnostics | None,
    out: Path,
    per_class_k: int,
) -> str:
    config = results.config
    meta = results.metadata
    significant = significant_classes(overall, 0, fdr=0.1)
    significant_text = ", ".join(f"{_label(n)} ({v:+.4f})" for n, v, _ in significant) or "none"
    baseline_rows = [[label, f"{m:.4f}", f"{s:.4f}", str(c)] for label, (m, s, c) in baselines.rows.items()]
    per_class_rows = []
    for column, target in enumerate(per_class.target_ids):
        best, worst = top_and_bottom(per_class, column, per_class_k)
        per_class_rows.append([
            _label(target),
            ", ".join(f"{_label(r.name)} ({r.influence:+.3f})" for r in best),
            ", ".join(f"{_label(r.name)} ({r.influence:+.3f})" for r in worst),
        ])
    look = ""
    if lookalikes is not None:
        rows = [[_label(d), ", ".join(map(_label, lookalikes.hits[d])) or "—"] for d in lookalikes.checked]
        look = (
            f"<h2>Sanity check: look-alike glyphs</h2><p>{lookalikes.num_hits} of {len(lookalikes.checked)} "
            f"digits have a look-alike glyph among their top {lookalikes.top_k} source classes.</p>"
            + _table(["digit", f"look-alikes in top {lookalikes.top_k}"], rows)
        )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>transfer-influence report: {html.escape(config.name)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:left}}
img{{max-width:100%}}code{{background:#f4f4f4;padding:0 3px}}</style></head><body>
<h1>Source-class influence: {html.escape(config.name)}</h1>
<p>{results.num_models} transferred models; {len(results.class_names)} source classes; {len(results.target_ids)}
target test examples in {len(results.target_class_names)} classes; output <code>{html.escape(overall.output_kind or '')}</code>;
estimator: {ESTIMATOR_NAMES[overall.estimator]}.
Design <code>{config.design.kind}</code> with subset ratio α = {config.design.alpha:g}: each model's source holds
{config.design.alpha:g}·K classes, so an influence is a class's effect <em>within a source of that size</em>.
Seeding: <code>{config.train.seeding}</code> ({SEEDING_TEXT[config.train.seeding]}). Fixed-feature transfer: frozen backbone with BatchNorm in eval mode
(source statistics), logistic head (L2 = {config.transfer.head_l2:g}) fitted by L-BFGS on
{config.target.shots_per_class} examples per target class.</p>
<p>Study seed {meta['seed']}, git commit <code>{html.escape(str(meta.get('git_commit')))}</code>,
versions {html.escape(', '.join(f'{k} {v}' for k, v in meta['versions'].items()))}.</p>
<h2>Baselines: does pretraining matter?</h2>{_table(["backbone", "target accuracy", "std", "count"], baseline_rows)}
{_img(out / "baselines.png")}
<h2>Overall influence (Figure 1)</h2>
<p>Classes whose overall influence differs from zero with the false-discovery rate controlled at 10%
(Benjamini–Hochberg over {len(results.class_names)} classes): {len(significant)} — {html.escape(significant_text)}.
Full table: <code>overall_influence.csv</code>.</p>
{_img(out / "overall_influence.png")}
<h2>Per target class (Figure 3)</h2>{_img(out / "per_target_class.png")}
{_table(["target class", f"top {per_class_k} source classes", f"bottom {per_class_k} source classes"], per_class_rows)}
{look}
{_diagnostics_html(diag, config.design.alpha, overall.output_kind or "p_true", overall.estimator, out)}
<p>Tables: <code>overall_influence.csv</code>, <code>per_target_class_influence.csv</code>, <code>baselines.csv</code>.</p>
</body></html>
"""


def _diagnostics_html(diag: Diagnostics | None, alpha: float, kind: str, estimator: str, out: Path) -> str:
    if diag is None:
        return "<h2>Reliability</h2><p>Diagnostics need at least 8 finished models.</p>"
    rows = diag.table()
    header = list(rows[0].keys())
    primary = [r for r in rows if r["estimator"] == estimator and r["output_kind"] == kind]
    summary = "; ".join(f"{LEVEL_NAMES[str(r['level'])]} {r['split_half_spearman']:.2f}" for r in primary)
    return f"""<h2>Reliability (α = {alpha:g}, {diag.num_models} models)</h2>
<p>Split-half Spearman — influences from two disjoint halves of the models, correlated — for
<code>{html.escape(kind)}</code> and {ESTIMATOR_NAMES[estimator]}: {html.escape(summary)}. The last column projects the
total number of models for a split-half Spearman of {diag.target_reliability:g}, from the Spearman–Brown
curve fitted to the measured points; held-out Spearman scores influences as a linear model of the
outputs of a quarter of the models left out of the estimate.</p>
{_img(out / "reliability.png")}
{_table(header, [[str(r[h]) for h in header] for r in rows])}
{_img(out / "bootstrap_knockoffs.png")}"""
