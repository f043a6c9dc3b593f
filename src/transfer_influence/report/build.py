"""The study report: PNG figures, CSV tables and one self-contained static HTML page."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..analysis.baselines import BaselineSummary, baseline_summary
from ..analysis.context import StudyContext, target_folder_name
from ..analysis.convergence import MIN_MODELS, Diagnostics, diagnose_study
from ..analysis.ranking_comparison import comparison_rows, read_ranking_sweeps
from ..analysis.debugging import explain_targets, most_mispredicted
from ..analysis.lookalikes import LookalikeCheck, lookalike_check
from ..analysis.projection import StudyImages, load_study_images, project_source_class
from ..analysis.rankings import example_influence, overall_influence, per_target_class_influence, ranked
from ..analysis.verify import read_verifications
from ..analysis.whatif import compare_with_sweep, read_sweep_summary
from ..errors import InputError
from ..estimate import InfluenceEstimate
from ..study.results import StudyResults
from .findings import Findings, study_findings
from .folder import staged_folder
from .page import ActionSections, render_page
from .plots import (
    plot_baselines, plot_bootstrap_and_knockoffs, plot_explanations, plot_overall, plot_per_target_class,
    plot_reliability, plot_source_projection, plot_whatif_vs_sweep,
)
from .projection_tables import file_stem
from .tables import save_diagnostics, write_baselines_csv, write_overall_csv, write_per_target_csv

REPORT_DIR = "report"
COUNTERFACTUAL_DIR = "counterfactual"
"""The folder of the counterfactual sweep the report reads (``context.folder`` adds the target)."""
PROJECTED_CLASSES = 3
"""Source classes drawn in the projection section: the most positive overall."""
EXPLAINED_TARGETS = 3
"""Most often mispredicted target images explained in the mistakes section."""


def class_thumbnails(images: StudyImages) -> dict[str, np.ndarray]:
    """One representative image per source class: the training example nearest the class mean."""
    thumbs: dict[str, np.ndarray] = {}
    for k, name in enumerate(images.source_classes):
        members = images.source_images[images.source_labels == k].astype(np.float32)
        if not len(members):
            continue
        centre = members.mean(axis=0)
        best = int(np.argmin(((members - centre) ** 2).reshape(len(members), -1).sum(axis=1)))
        image = members[best]
        thumbs[name] = image[0] if image.shape[0] == 1 else np.transpose(image, (1, 2, 0)) / 255.0
    return thumbs


@dataclass
class Report:
    directory: Path
    html_path: Path
    overall: InfluenceEstimate
    per_target_class: InfluenceEstimate
    baselines: BaselineSummary
    lookalikes: LookalikeCheck | None
    diagnostics: Diagnostics | None
    actions: ActionSections | None = None
    findings: Findings | None = None


def report_diagnostics(context: StudyContext) -> Diagnostics:
    """The diagnostics a report shows: every output kind, both estimators, the bootstrap and
    knockoffs of the report's own (kind, estimator) — the same call, with the same defaults, as
    ``transfer-influence diagnose`` on the study's analysis settings, so both give the same numbers."""
    return diagnose_study(context)


def build_report(
    context: StudyContext,
    top_k: int = 15,
    per_class_k: int = 5,
    diagnostics: bool = True,
    actions: bool = True,
) -> Report:
    """Figures, tables, findings and report.html of a class-level study, on the context's target,
    output kind and estimator, in ``context.folder("report")`` (an extra target's report goes to
    ``STUDY/report/target-<name>/``, beside the primary's and never mixed with it).

    ``actions=False`` leaves out the sections on acting on the influences (counterfactual removal,
    what-if against retraining, projection, mistakes); none of them retrains anything.

    The folder is written whole or not at all (``folder.staged_folder``): it holds exactly this
    report's files afterwards, and a report that fails leaves the previous one untouched."""
    context.require_units("class", "report")
    context.results  # noqa: B018 - read (and refused below 3 models) before a folder is staged
    out = context.folder(REPORT_DIR)
    others = [target_folder_name(name) for name in context.target_names[1:]] if context.is_primary_target else []
    with staged_folder(out, keep=others) as staging:
        report = _write_report(context, staging, top_k, per_class_k, diagnostics, actions)
    return _moved(report, staging, out)


def _write_report(
    context: StudyContext, out: Path, top_k: int, per_class_k: int, diagnostics: bool, actions: bool
) -> Report:
    """Every file of the report, into ``out``."""
    results, kind, estimator = context.results, context.kind, context.estimator
    overall = overall_influence(results, kind, estimator)
    per_class = per_target_class_influence(results, kind, estimator)
    baselines = baseline_summary(results)
    images = load_study_images(context)  # read once: thumbnails, projections and mistakes share it
    thumbs = class_thumbnails(images)
    plot_overall(overall, thumbs, top_k, out / "overall_influence.png")
    plot_per_target_class(per_class, thumbs, per_class_k, out / "per_target_class.png")
    plot_baselines(baselines, out / "baselines.png")
    write_overall_csv(overall, out / "overall_influence.csv")
    write_per_target_csv(per_class, out / "per_target_class_influence.csv")
    write_baselines_csv(baselines, out / "baselines.csv")
    lookalikes = lookalike_check(per_class, top_k=3)
    diag = None
    if diagnostics and results.num_models >= MIN_MODELS:
        diag = report_diagnostics(context)
        save_diagnostics(diag, out)
        plot_reliability(diag, kind, out / "reliability.png")  # draws nothing when no curve has a point
        plot_bootstrap_and_knockoffs(diag, out / "bootstrap_knockoffs.png")
    sweep_dir = context.folder(COUNTERFACTUAL_DIR)
    sections = action_sections(context, images, out, overall) if actions else None
    findings = study_findings(results, overall, diag, sweep_dir)
    findings.save(out / "findings.json")
    html_path = out / "report.html"
    html_path.write_text(
        render_page(results, overall, per_class, baselines, lookalikes, diag, out, per_class_k, sections, findings)
    )
    return Report(out, html_path, overall, per_class, baselines, lookalikes, diag, sections, findings)


def _moved(report: Report, staging: Path, out: Path) -> Report:
    """The report with its paths pointing into the published folder instead of the staging one."""

    def rebase(path: Path | None) -> Path | None:
        return None if path is None else (out / path.relative_to(staging) if path.is_relative_to(staging) else path)

    if report.actions is not None:
        sections = report.actions
        sections.projections = [(p, value, rebase(figure)) for p, value, figure in sections.projections]  # type: ignore[misc]
        sections.explanations_figure = rebase(sections.explanations_figure)
        sections.whatif_figure = rebase(sections.whatif_figure)
    report.directory, report.html_path = out, out / report.html_path.name
    return report


def action_sections(context: StudyContext, images: StudyImages, out: Path, overall: InfluenceEstimate) -> ActionSections:
    """Read a finished counterfactual sweep if there is one, compare it with the what-if
    predictions, draw projections and explained mistakes, and read the verified mistakes written by
    ``verify``: seconds, and nothing is retrained."""
    results, kind, estimator = context.results, context.kind, context.estimator
    sections = _counterfactual_part(results, context.folder(COUNTERFACTUAL_DIR), out)
    example = example_influence(results, kind, estimator)
    for entry in ranked(overall, 0)[:PROJECTED_CLASSES]:
        projection = project_source_class(example, results.target_labels, results.target_class_names, entry.name)
        figure = out / f"projection_{file_stem(entry.name)}.png"
        plot_source_projection(projection, images, figure)
        sections.projections.append((projection, entry.influence, figure))
    columns = most_mispredicted(results, EXPLAINED_TARGETS)
    sections.explanations = explain_targets(results, columns, kind, estimator)
    sections.explanations_figure = out / "mistakes.png"
    plot_explanations(sections.explanations, images, sections.explanations_figure,
                      "Most negative source classes of the most often mispredicted target images")
    sections.verified_targets, sections.verify_summary = read_verifications(context)
    sections.rankings_compared = _rankings_compared(context)
    return sections


def _rankings_compared(context: StudyContext) -> list[dict[str, object]]:
    """The comparison rows when the study has sweeps of more than one ranking (else none)."""
    try:
        sweeps = read_ranking_sweeps(context)
    except InputError:  # no sweep, or one written before per-seed accuracies were recorded
        return []
    return comparison_rows(sweeps) if len(sweeps) > 1 else []


def _counterfactual_part(results: StudyResults, sweep_dir: Path, out: Path) -> ActionSections:
    """The sweep's summary and figure as written by ``transfer-influence counterfactual``, and the
    what-if comparison with it; a missing sweep or baseline leaves the reason in its place."""
    if not (sweep_dir / "summary.csv").is_file():
        return ActionSections(
            counterfactual=None, counterfactual_figure=None, recommended=None, whatif=None, whatif_figure=None,
            whatif_missing=(
                "Needs the retrains of a counterfactual sweep to compare with: run "
                "`transfer-influence counterfactual STUDY_DIR`, then the report again."
            ),
        )
    figure = sweep_dir / "counterfactual.png"
    recommended_file = sweep_dir / "recommended_source.txt"
    recommended = None
    if recommended_file.is_file():
        header, *kept = recommended_file.read_text().splitlines()
        recommended = f"{header.lstrip('# ')} ({len(kept)} classes kept)"
    comparison = comparison_figure = missing = None
    try:
        comparison = compare_with_sweep(results, sweep_dir)
    except InputError as error:
        missing = f"No what-if comparison: {error}"
    else:
        comparison_figure = out / "whatif_vs_sweep.png"
        plot_whatif_vs_sweep(comparison, comparison_figure)
    return ActionSections(
        counterfactual=read_sweep_summary(sweep_dir),
        counterfactual_figure=figure if figure.is_file() else None,
        recommended=recommended,
        whatif=comparison,
        whatif_figure=comparison_figure,
        whatif_missing=missing,
    )
