"""The HTML report of an example-level study: its leak pairs, planted-fault scores and removals.

The class report (``build.py``) ranks whole source classes; an example-level study's units are single
source examples, so its page shows what such a study is for: the (target image, source example)
pairs with the strongest coefficients (paper Figure 7), how many planted faults they recover when
the source has them (``source.plant``), and the removal sweep when ``counterfactual`` has been run.
Ridge or difference of means (seconds); the LASSO pairs stay with the ``leaks`` command.
"""

from __future__ import annotations

import csv
import html
from pathlib import Path

from ..analysis.context import StudyContext
from ..analysis.leaks import LeakPair
from ..analysis.planted import LeakFindings, study_leak_findings
from ..analysis.projection import load_study_images
from ..errors import InputError
from ..estimate import ESTIMATOR_NAMES
from ..study.results import StudyResults
from .folder import staged_folder
from .leak_tables import write_leak_pairs_csv
from .page import _img, _table, page_head
from .plots import plot_leak_pairs

PAIRS_SHOWN = 10
REPORT_DIR = "report"
COUNTERFACTUAL_DIR = "counterfactual"
LEAKS_DIR = "leaks"


def build_leak_report(context: StudyContext, findings: LeakFindings | None = None) -> Path:
    """Write ``STUDY/report/index.html`` (with ``leak_pairs.csv`` and ``.png``) for an example study,
    from ``findings`` when the caller has fitted them (``leaks`` in the demo), else fitted here on the
    context's output kind and estimator."""
    context.require_units("example", "report")
    if not context.is_primary_target:
        raise InputError("--target: the report of an example-level study is drawn for its primary target")
    results = context.results
    if findings is None:
        findings = study_leak_findings(context)
    ranking = findings.ranking
    out = context.folder(REPORT_DIR)
    with staged_folder(out) as staging:  # whole or not at all, as the class report (folder.py)
        write_leak_pairs_csv(ranking, staging / "leak_pairs.csv")
        plot_leak_pairs(ranking, load_study_images(context), staging / "leak_pairs.png", PAIRS_SHOWN)
        sections = [_pairs_html(ranking.positive, ranking.negative, staging)]
        if findings.planted is not None:
            sections.append(_planted_html(findings.planted.row(), context.folder(LEAKS_DIR) / "planted_curve.png"))
        sections.append(_removal_html(context.folder(COUNTERFACTUAL_DIR)))
        (staging / "index.html").write_text(_page(results, ranking.output_kind or "", ranking.estimator, sections))
    return out / "index.html"


def _page(results: StudyResults, kind: str, estimator: str, sections: list[str]) -> str:
    config, meta = results.config, results.metadata
    return page_head(config.name, "Source-example influence") + f"""<p>{results.num_models} transferred models, each trained on a random share α = {config.design.alpha:g} of the
{len(results.unit_names)} source training examples (design <code>{config.design.kind}</code>, unit
<code>example</code>); {len(results.target_ids)} target test images; output <code>{html.escape(kind)}</code>;
estimator: {ESTIMATOR_NAMES.get(estimator, estimator)} per target image.</p>
<p>Study seed {meta['seed']}, git commit <code>{html.escape(str(meta.get('git_commit')))}</code>,
versions {html.escape(', '.join(f'{k} {v}' for k, v in meta['versions'].items()))}.</p>
{''.join(sections)}
</body></html>
"""


def _pairs_html(positive: tuple[LeakPair, ...], negative: tuple[LeakPair, ...], out: Path) -> str:
    def rows(pairs: tuple[LeakPair, ...]) -> list[list[str]]:
        return [[str(p.rank), p.target_id, p.target_label, p.source_id, p.source_class, f"{p.coefficient:+.4f}"]
                for p in pairs[:PAIRS_SHOWN]]

    header = ["rank", "target image", "label", "source example", "class", "coefficient"]
    return (
        "<h2>Leak and mislabel candidates (Figure 7)</h2><p>Each target image's most positive source examples "
        "(candidate leaks: near-copies of it) and most negative (candidate mislabeled or misleading examples), "
        f"ranked over the whole target set. All pairs: <code>leak_pairs.csv</code>; LASSO pairs: "
        f"<code>transfer-influence leaks STUDY</code>.</p>{_img(out / 'leak_pairs.png')}"
        f"<h3>Most positive</h3>{_table(header, rows(positive))}<h3>Most negative</h3>{_table(header, rows(negative))}"
    )


def _planted_html(row: dict[str, object], curve: Path) -> str:
    shown = {k: (f"{v:.3g}" if isinstance(v, float) else str(v)) for k, v in row.items()}
    figure = _img(curve) if curve.exists() else (
        "<p>Detection against the number of models: <code>transfer-influence leaks STUDY --curve</code>.</p>"
    )
    return (
        "<h2>Planted faults found</h2><p>The source holds faults planted on purpose (<code>source.plant</code>): a "
        "leak is found when it is among the 10 most positive source examples of the image it copies; mislabels "
        "are scored among the source examples with the most negative coefficient on any image (enrichment: "
        "over random flagging).</p>" + _table(list(shown), [list(shown.values())]) + figure
    )


def _removal_html(sweep_dir: Path) -> str:
    summary = sweep_dir / "summary.csv"
    if not summary.exists():
        return ("<h2>Removing source examples</h2><p>Not run yet: <code>transfer-influence counterfactual STUDY</code> "
                "retrains without the most negative / positive / random source examples.</p>")
    with open(summary, newline="") as handle:
        table = list(csv.reader(handle))
    figure = sweep_dir / "counterfactual.png"
    return (
        "<h2>Removing source examples</h2><p>Full-source retrains with source examples removed, paired seeds, "
        "scored on the target images that did not choose them (<code>counterfactual/summary.csv</code>).</p>"
        + _table(table[0], table[1:]) + (_img(figure) if figure.exists() else "")
    )
