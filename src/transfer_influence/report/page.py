"""The self-contained HTML page of a study's report."""

from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass, field
from pathlib import Path

from ..analysis.baselines import BaselineSummary
from ..analysis.convergence import Diagnostics
from ..analysis.debugging import Explanation
from ..analysis.projection import SourceProjection
from ..analysis.verify import StoredSummary, StoredTarget
from ..analysis.whatif import SweepArm, SweepComparison
from ..analysis.lookalikes import LookalikeCheck
from ..analysis.rankings import top_and_bottom
from ..estimate import ESTIMATOR_NAMES, InfluenceEstimate
from ..evaluate.fdr import significant_classes
from ..evaluate.reliability import LEVEL_NAMES
from ..study.config import TargetConfig
from ..study.design import design_subset_size
from ..study.results import StudyResults
from .findings import Findings
from .tables import class_label as _label

SEEDING_TEXT = {
    "independent": "each model its own initialisation and data-order seed",
    "common": "one seed for every model",
    "block": "one seed per design block, shared by the block's models, whose subsets are disjoint",
}


def _img_if(path: Path, missing: str) -> str:
    """The figure, or why it is not there (a diagnostic skipped on a small study draws none)."""
    return _img(path) if path.is_file() else f"<p>({html.escape(missing)})</p>"


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(path.stem)}">'


def page_head(name: str, heading: str) -> str:
    """The page's opening up to its heading: one style for every report page."""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>transfer-influence report: {html.escape(name)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:left}}
img{{max-width:100%}}code{{background:#f4f4f4;padding:0 3px}}</style></head><body>
<h1>{html.escape(heading)}: {html.escape(name)}</h1>
"""


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


@dataclass
class ActionSections:
    """What the report shows about acting on the influences; each part is empty (with the reason
    or the command that fills it) when the study lacks what it needs."""

    counterfactual: list[SweepArm] | None
    """Rows of ``counterfactual/summary.csv``; None when no sweep has been run."""
    counterfactual_figure: Path | None
    recommended: str | None
    """What the sweep recommends training on (first line of ``recommended_source.txt``)."""
    whatif: SweepComparison | None
    whatif_figure: Path | None
    whatif_missing: str | None
    """Why there is no what-if comparison (no sweep, no all-source baseline, …)."""
    projections: list[tuple[SourceProjection, float, Path]] = field(default_factory=list)
    """(projection, the class's overall influence, its figure) for the most positive classes."""
    explanations: list[Explanation] = field(default_factory=list)
    explanations_figure: Path | None = None
    verified_targets: list[StoredTarget] = field(default_factory=list)
    """Target images retrained with and without a class (``verify --target``), as stored."""
    verify_summary: StoredSummary | None = None
    """The Appendix E.4 shares (``verify --summary``), as stored; None when not run."""
    rankings_compared: list[dict[str, object]] = field(default_factory=list)
    """Rows of ``ranking_comparison.comparison_rows`` when the study has sweeps of several rankings."""


def _target_config(results: StudyResults) -> TargetConfig:
    """The settings of the target the results are of (the primary's unless ``for_target`` chose another)."""
    return results.config.target_config(results.target_name) if results.target_names else results.config.target


def _target_note(results: StudyResults) -> str:
    """For a study with several targets, which one this report is of."""
    if len(results.target_names) < 2:
        return ""
    return f" (target <code>{html.escape(results.target_name)}</code> of {html.escape(', '.join(results.target_names))})"


def render_page(
    results: StudyResults,
    overall: InfluenceEstimate,
    per_class: InfluenceEstimate,
    baselines: BaselineSummary,
    lookalikes: LookalikeCheck | None,
    diag: Diagnostics | None,
    out: Path,
    per_class_k: int,
    actions: ActionSections | None = None,
    findings: Findings | None = None,
) -> str:
    config = results.config
    meta = results.metadata
    subset_size = design_subset_size(config.design.kind, len(results.class_names), config.design.alpha)
    significant = significant_classes(overall, 0, fdr=0.1, alternative="by-sign")
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
    return page_head(config.name, "Source-class influence") + (findings.html() if findings is not None else "") + f"""<p>{results.num_models} transferred models; {len(results.class_names)} source classes; {len(results.target_ids)}
target test examples in {len(results.target_class_names)} classes; output <code>{html.escape(overall.output_kind or '')}</code>;
estimator: {ESTIMATOR_NAMES[overall.estimator]}.
Design <code>{config.design.kind}</code> with subset ratio α = {config.design.alpha:g}: each model's source holds
{subset_size} of the {len(results.class_names)} classes, so an influence is a class's effect <em>within a source of that size</em>.
Seeding: <code>{config.train.seeding}</code> ({SEEDING_TEXT[config.train.seeding]}). Fixed-feature transfer: frozen backbone with BatchNorm in eval mode
(source statistics), logistic head (L2 = {config.transfer.head_l2:g}) fitted by L-BFGS on
{_target_config(results).shots_per_class} examples per target class{_target_note(results)}.</p>
<p>Study seed {meta['seed']}, git commit <code>{html.escape(str(meta.get('git_commit')))}</code>,
versions {html.escape(', '.join(f'{k} {v}' for k, v in meta['versions'].items()))}.</p>
<h2>Baselines: does pretraining matter?</h2>{_table(["backbone", "target accuracy", "std", "count"], baseline_rows)}
{_img(out / "baselines.png")}
<h2>Overall influence (Figure 1)</h2>
<p>Classes whose overall influence is significantly positive or significantly negative, each list with
its false-discovery rate controlled at 10% (one-sided Benjamini–Hochberg over the {len(results.class_names)}
classes, one list per sign): {len(significant)} — {html.escape(significant_text)}.
Full table: <code>overall_influence.csv</code>.</p>
{_img(out / "overall_influence.png")}
<h2>Per target class (Figure 3)</h2>{_img(out / "per_target_class.png")}
{_table(["target class", f"top {per_class_k} source classes", f"bottom {per_class_k} source classes"], per_class_rows)}
{look}
{_diagnostics_html(diag, config.design.alpha, overall.output_kind or "p_true", overall.estimator, out)}
{_actions_html(actions) if actions is not None else ""}
<p>Tables: <code>overall_influence.csv</code>, <code>per_target_class_influence.csv</code>, <code>baselines.csv</code>.</p>
</body></html>
"""


def _cell(value: object) -> str:
    """A table cell: '—' where a diagnostic was skipped (None)."""
    return "—" if value is None else str(value)


def _number(value: object) -> str:
    return "not measured" if value is None else f"{float(value):.2f}"  # type: ignore[arg-type]


def _notes_html(diag: Diagnostics) -> str:
    if not diag.notes:
        return ""
    items = "".join(f"<li>{html.escape(note)}</li>" for note in diag.notes)
    return f"<p>Skipped on this study (too few models for them; the numbers they would give are blank):</p><ul>{items}</ul>"


def _lds_html(diag: Diagnostics, kind: str, estimator: str) -> str:
    scores = diag.lds.get((kind, estimator), {})
    if not scores:
        return ""
    parts = []
    for level, lds in scores.items():
        low, high = lds.interval(0.95)
        interval = f" (95% CI [{low:.2f}, {high:.2f}])" if math.isfinite(low) else ""
        parts.append(f"{LEVEL_NAMES[level]} {_number(lds.mean if math.isfinite(lds.mean) else None)}{interval}")
    first = next(iter(scores.values()))
    return (f"<p>Linear datamodeling score (LDS, as TRAK and dattri define it): influences fitted on "
            f"{first.num_train_models} models predict each of the {first.num_models} held-out models' outputs as "
            f"the sum of its classes' influences; the score is the Spearman correlation over held-out models between "
            f"prediction and output, averaged over targets — {html.escape('; '.join(parts))}. It is the held-out "
            "Spearman of the table, with constant targets left out and a jackknife interval over held-out models.</p>")


def _diagnostics_html(diag: Diagnostics | None, alpha: float, kind: str, estimator: str, out: Path) -> str:
    if diag is None:
        return "<h2>Reliability</h2><p>Diagnostics need at least 8 finished models.</p>"
    rows = diag.table()
    header = list(rows[0].keys())
    primary = [r for r in rows if r["estimator"] == estimator and r["output_kind"] == kind]
    summary = "; ".join(f"{LEVEL_NAMES[str(r['level'])]} {_number(r['split_half_spearman'])}" for r in primary)
    knockoffs = ""
    if diag.knockoffs is not None:
        ko = diag.knockoffs
        # The paper's statistic at k ≈ K/10 (its top 100 of 1,000 classes); top_k runs to K/2.
        i = min(len(ko.top_k), max(1, round(len(ko.top_k) / 5))) - 1
        knockoffs = f"""<p>Bootstrap error (left, paper Figure 8): standard deviation of the overall influences
over resamples of the models. Knockoffs (right, paper App. F and Figure 30): fake classes whose masks
come from the same design with another seed, so they have no effect, estimated together with the real
classes and ranked with them by overall influence. Solid lines: the paper's statistic, the share of
knockoffs among the top k of that joint ranking — 0.5 is chance, 0 means the top k are all real
classes; at k = {int(ko.top_k[i])} it is {ko.share_positive[i]:.2f} for the most positive and
{ko.share_negative[i]:.2f} for the most negative classes. Dashed lines: the knockoff+ estimate of the
false-discovery rate among the top k <em>real</em> classes, (1 + knockoffs ranked above the k-th real
class)/k. With fixed-size subsets a class without effect displaces the others and so scores slightly
below the knockoffs when the classes help on average: then the positive curves overstate and the
negative ones understate false discoveries.</p>"""
    return f"""<h2>Reliability (α = {alpha:g}, {diag.num_models} models)</h2>
<p>Split-half Spearman — influences from two disjoint halves of the models, correlated — for
<code>{html.escape(kind)}</code> and {ESTIMATOR_NAMES[estimator]}: {html.escape(summary)}. The last column projects the
total number of models for a split-half Spearman of {diag.target_reliability:g}, from the Spearman–Brown
curve fitted to the measured points; held-out Spearman scores influences as a linear model of the
outputs of a quarter of the models left out of the estimate.</p>
{_notes_html(diag)}
{_img_if(out / "reliability.png", "no split-half curve could be measured on this study")}
{_table(header, [[_cell(r[h]) for h in header] for r in rows])}
{_lds_html(diag, kind, estimator)}
{knockoffs}
{_img(out / "bootstrap_knockoffs.png")}"""


def _plus_minus(value: float | None, error: float | None, signed: bool = False) -> str:
    if value is None:
        return ""
    shown = f"{value:+.4f}" if signed else f"{value:.4f}"
    return shown if error is None or not math.isfinite(error) else f"{shown} ± {error:.4f}"


def _counterfactual_html(actions: ActionSections) -> str:
    title = "<h2>Counterfactual removal (Figure 2, Table 2b)</h2>"
    if actions.counterfactual is None:
        return title + (
            "<p>No removal sweep yet. <code>transfer-influence counterfactual STUDY_DIR</code> retrains the full "
            "source without the k most positive, most negative and random classes (paired seeds) and writes "
            "<code>counterfactual/summary.csv</code>; the report then shows it here.</p>"
        )
    rows = [
        [
            arm.selection, str(arm.k), _plus_minus(arm.mean, arm.std), _plus_minus(arm.diff_vs_full, arm.diff_se, True),
            "" if arm.beats_full_2se is None else ("yes" if arm.beats_full_2se else "no"),
        ]
        for arm in actions.counterfactual
    ]
    seeds = max((arm.n for arm in actions.counterfactual), default=0)
    figure = _img(actions.counterfactual_figure) if actions.counterfactual_figure is not None else (
        "<p>(<code>counterfactual/counterfactual.png</code> is missing: run the counterfactual command again to draw it.)</p>"
    )
    recommended = (
        f"<p>Recommended source: {html.escape(actions.recommended)} (<code>counterfactual/recommended_source.txt</code>).</p>"
        if actions.recommended else ""
    )
    return title + f"""<p>Target accuracy on the scoring half of the target test images (the other half chose the
classes) of full-source models retrained without the classes of each arm, {seeds} paired seeds; the difference
is paired against the full source with the same seed, ± its standard error. Table:
<code>counterfactual/summary.csv</code>.</p>
{figure}
{_table(["selection", "k", "accuracy (mean ± std)", "paired difference ± SE", "> 2 SE"], rows)}
{recommended}"""


def _whatif_html(actions: ActionSections) -> str:
    title = "<h2>What-if predictions against retraining</h2>"
    comparison = actions.whatif
    if comparison is None:
        return title + f"<p>{html.escape(actions.whatif_missing or 'No comparison.')}</p>"
    spearman = "n/a (fewer than 3 arms)" if not math.isfinite(comparison.spearman) else f"{comparison.spearman:.2f}"
    rows = [
        [f"{p.selection} {p.k}", _plus_minus(p.measured, p.measured_se, True), _plus_minus(p.predicted, p.predicted_stderr, True),
         f"{p.predicted - p.measured:+.4f}"]
        for p in comparison.points
    ]
    figure = _img(actions.whatif_figure) if actions.whatif_figure is not None else ""
    return title + f"""<p>For each arm of the sweep that removes one named set of classes, the change in target
accuracy the study's linear datamodel predicts (<code>transfer-influence whatif</code>, {html.escape(comparison.scaling)}
scaling, {html.escape(comparison.level)} interpolation in the number of classes, over all target images, against
the all-source baseline) beside the change retraining measured (arm mean
minus full-source mean on the scoring half). Spearman correlation over {len(comparison.points)} arms: {spearman};
mean absolute error: {comparison.mean_absolute_error:.4f}. The class effects were measured within sources of
{comparison.subset_size} of {comparison.num_classes} classes and are applied to sources of nearly
{comparison.num_classes} classes, so the predictions extrapolate beyond what the study measured.</p>
{figure}
{_table(["arm", "measured change ± SE", "predicted change ± SE", "predicted − measured"], rows)}"""


def _projection_html(actions: ActionSections) -> str:
    title = "<h2>Projection: where the most positive source classes act (§4.1, Figures 4–5)</h2>"
    if not actions.projections:
        return title + "<p>No source class to project.</p>"
    parts = [
        f"<h3>Source class {html.escape(_label(p.source_class))} (overall influence {value:+.4f})</h3>{_img(path)}"
        for p, value, path in actions.projections
    ]
    return title + (
        f"<p>The {len(actions.projections)} source classes with the most positive overall influence, each beside the "
        "target test images it influences most positively (top row of targets) and most negatively (bottom row). "
        "Any other class: <code>transfer-influence project STUDY_DIR --source-class C</code>.</p>" + "".join(parts)
    )


def _explanations_html(actions: ActionSections) -> str:
    title = "<h2>Mistakes: the source classes behind the most often mispredicted images (§4.2, Figure 6)</h2>"
    if not actions.explanations:
        return title + "<p>No target image to explain.</p>"
    rows = [
        [
            e.target_id, _label(e.true_label), f"{e.accuracy:.0%}", f"{e.mean_p_true:.3f}",
            "; ".join(f"{_label(s.name)} {s.influence:+.4f} [{s.ci95_low:+.4f}, {s.ci95_high:+.4f}]" for s in e.suspects)
            or "none with negative influence",
        ]
        for e in actions.explanations
    ]
    figure = _img(actions.explanations_figure) if actions.explanations_figure is not None else ""
    return title + f"""<p>The {len(actions.explanations)} target images the study's models get right least often, each with
its most negative source classes (influence with 95% interval) — the first suspects for the mistake. Other images:
<code>transfer-influence explain STUDY_DIR --target ID</code>.</p>
{figure}
{_table(["target", "true label", "right in (models)", "mean p_true", "most negative source classes"], rows)}"""


def _share(value: object) -> str:
    return f"{value:.1%}" if isinstance(value, (int, float)) and math.isfinite(value) else "n/a"


def _verify_html(actions: ActionSections) -> str:
    title = "<h2>Verified mistakes: retrained without the most negative class (§4.2 Figure 6 right, App. E.4)</h2>"
    targets, summary = actions.verified_targets, actions.verify_summary
    if not targets and summary is None:
        return title + (
            "<p>No verification yet. <code>transfer-influence verify STUDY_DIR --target ID</code> retrains the full source "
            "with and without an image's most negative source class and counts the labels predicted for it; "
            "<code>--summary</code> asks how often such a removal helps the most negatively influenced images. "
            "The report then shows them here.</p>"
        )
    parts = [title]
    if summary is not None:
        details = summary.details
        seeds = len(details["seeds"])  # type: ignore[arg-type]
        rows = []
        for key, label in (("top_pairs", "top pairs whose class was retrained away"),
                           ("class_top_images", "most negatively influenced images of each retrained class")):
            shares = details[key]["shares"]  # type: ignore[index]
            rows.append([label, str(shares["count"]), _share(shares["better"]), _share(shares["worse"]), _share(shares["same"])])
        classes = ", ".join(_label(str(c)) for c in details["classes"])  # type: ignore[union-attr]
        parts.append(
            f"<p>Each target image is paired with its most negative source class; of the "
            f"{details['top_pairs']['requested']} pairs with the most negative influence, "  # type: ignore[index]
            f"{details['top_pairs']['kept']} have one of the retrained classes ({html.escape(classes)}), "  # type: ignore[index]
            f"each retrained away with {seeds} seeds. Better / worse / same: the image is predicted correctly by "
            f"more / fewer / as many seeds once its class is removed. Table: <code>verify/summary.csv</code>.</p>"
            + _table(["pairs", "count", "better", "worse", "same"], rows)
        )
    if targets:
        rows = [
            [
                str(t.details["target_id"]), _label(str(t.details["true_label"])), _label(str(t.details["removed"])),
                f"{t.details['influence']:+.4f}", _share(t.details["correct_with"]), _share(t.details["correct_without"]),
            ]
            for t in targets
        ]
        parts.append(
            "<p>Target images retrained with and without one source class: the share of seeds predicting the true "
            "label with and without it (tables: <code>verify/target-*.csv</code>).</p>"
            + _table(["target", "true label", "removed class", "influence", "correct with", "correct without"], rows)
        )
        parts += [_img(t.figure) for t in targets if t.figure is not None]
    return "\n".join(parts)


def _rankings_compared_html(actions: ActionSections) -> str:
    rows = actions.rankings_compared
    if not rows:
        return ""

    def cell(mean: object, se: object) -> str:
        return "" if mean == "" else _plus_minus(float(mean), float(se), True)  # type: ignore[arg-type]

    table = [
        [
            str(r["ranking"]), str(r["ranking_from"]), str(r["models"]), f"{r['selection']}-{r['k']}",
            cell(r["diff_vs_full"], r["diff_vs_full_se"]), cell(r["random_minus_top"], r["random_minus_top_se"]),
            cell(r["bottom_minus_first_ranking_bottom"], r["bottom_minus_first_ranking_bottom_se"]),
        ]
        for r in rows
    ]
    return f"""<h2>Rankings compared (another α, target or architecture: App. E.5)</h2>
<p>The same removal sweep acting on the study's own ranking and on rankings taken from other studies
(<code>counterfactual --ranking-from</code>); all arms share the paired seeds and the scoring half, so every
difference is paired seed by seed (± its standard error). <em>random − top</em>: how far removing the ranking's
k most positive classes falls below removing k random ones; <em>bottom − own bottom</em>: the ranking's bottom-k
against the study's own. Table: <code>counterfactual/rankings_compared.csv</code>.</p>
{_table(["ranking", "from", "models", "arm", "vs full", "random − top", "bottom − own bottom"], table)}"""


def _actions_html(actions: ActionSections) -> str:
    return "\n".join([
        _counterfactual_html(actions), _rankings_compared_html(actions), _whatif_html(actions), _projection_html(actions), _explanations_html(actions),
        _verify_html(actions),
    ])
