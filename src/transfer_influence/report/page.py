"""The self-contained HTML page of a study's report."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from ..analysis.baselines import BaselineSummary
from ..analysis.convergence import Diagnostics
from ..analysis.lookalikes import LookalikeCheck
from ..analysis.rankings import top_and_bottom
from ..estimate import ESTIMATOR_NAMES, InfluenceEstimate
from ..evaluate.fdr import significant_classes
from ..evaluate.reliability import LEVEL_NAMES
from ..study.design import design_subset_size
from ..study.results import StudyResults
from .tables import class_label as _label

SEEDING_TEXT = {
    "independent": "each model its own initialisation and data-order seed",
    "common": "one seed for every model",
    "block": "one seed per design block, shared by the block's models, whose subsets are disjoint",
}


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(path.stem)}">'


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_page(
    results: StudyResults,
    overall: InfluenceEstimate,
    per_class: InfluenceEstimate,
    baselines: BaselineSummary,
    lookalikes: LookalikeCheck | None,
    diag: Diagnostics | None,
    out: Path,
    per_class_k: int,
) -> str:
    config = results.config
    meta = results.metadata
    subset_size = design_subset_size(config.design.kind, len(results.class_names), config.design.alpha)
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
{subset_size} of the {len(results.class_names)} classes, so an influence is a class's effect <em>within a source of that size</em>.
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
{_img(out / "reliability.png")}
{_table(header, [[str(r[h]) for h in header] for r in rows])}
{knockoffs}
{_img(out / "bootstrap_knockoffs.png")}"""
