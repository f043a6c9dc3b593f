"""Commands that read a finished study: ``influence``, ``diagnose``, ``report``, ``project``, ``explain``,
``leaks``. Each handler is parse → ``study_context`` → the analysis / report entry function → print."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InputError
from .common import context_target_line, print_partial_note, study_context

if TYPE_CHECKING:
    from ..analysis.context import StudyContext
    from ..analysis.rankings import StudyInfluence
    from ..analysis.planted import CurveRequest, LeakFindings, PlantedScore


GRADIENT_FLAGS = ("gradient_models", "gradient_dims", "gradient_ridge", "aggregate", "gradient_device")
"""``influence`` flags that only ``--estimator trak`` reads."""


def cmd_influence(args: argparse.Namespace) -> int:
    from ..analysis.rankings import study_influence
    from ..report.tables import write_influence_tables

    if args.estimator == "trak":
        return _trak_influence(args)
    given = [f"--{name.replace('_', '-')}" for name in GRADIENT_FLAGS if getattr(args, name, None) is not None]
    if given:
        raise InputError(f"{', '.join(given)} set(s) gradient influence: add --estimator trak, or leave them out")
    context = study_context(args, "influence")  # an unknown --kind is refused before the folder exists
    print_partial_note(context)
    found = study_influence(context, args.fdr)
    out = write_influence_tables(found, args.out or context.folder("influence"))
    print(f"{context.results.num_models} models, {len(found.overall.unit_names)} {context.unit_word}, "
          f"{len(found.examples.target_ids)} targets{context_target_line(context)}, output {context.kind}, "
          f"estimator {context.estimator}; estimated in {found.seconds:.2f} s")
    _print_ranking(found, args.top, args.fdr, context.unit_word)
    print(f"tables in {out}")
    return 0


def _trak_influence(args: argparse.Namespace) -> int:
    """``influence --estimator trak``: gradient models stored in STUDY/gradients/ (trained when missing),
    then TRAK class influences on the primary target, written as the other estimators' tables."""
    from ..analysis.gradient_influence import TRAK_OUTPUT, TrakSettings, trak_study_influence
    from ..pipeline.gradients import GradientRequest, study_gradients
    from ..report.tables import write_influence_tables

    context = study_context(args, "influence", estimators=("dim", "ridge", "trak"))
    if args.kind is not None:
        raise InputError(f"--kind chooses a datamodel's output; trak explains the true class's {TRAK_OUTPUT} "
                         "log p / (1 − p): leave --kind out")
    if not context.is_primary_target:
        raise InputError("--estimator trak works on the study's primary target only: leave --target-set out")
    defaults = GradientRequest()
    request = GradientRequest(args.gradient_models or defaults.models, args.gradient_dims or defaults.dims,
                              device=args.gradient_device)
    inputs = study_gradients(context.path, request, say=print)
    settings = TrakSettings(args.gradient_ridge or TrakSettings().ridge, args.aggregate or TrakSettings().aggregation)
    found = trak_study_influence(inputs, settings, args.fdr)
    out = write_influence_tables(found, args.out or context.folder("influence"))
    print(f"{request.models} gradient models, d = {request.dims}, ridge {settings.ridge:g}, class {settings.aggregation}; "
          f"{len(found.overall.unit_names)} classes, {len(found.examples.target_ids)} targets, output {TRAK_OUTPUT}, "
          f"estimator trak; estimated in {found.seconds:.2f} s")
    _print_ranking(found, args.top, args.fdr, "classes")
    print(f"tables in {out}")
    return 0


def _print_ranking(found: "StudyInfluence", top: int, fdr: float, units: str) -> None:
    """The overall ranking's ends with 95% intervals and the significant units of each sign."""
    from ..analysis.rankings import ranked

    overall = found.overall
    order = ranked(overall)
    half = overall.critical_value(0.95)
    for title, rows in (("most positive", order[:top]), ("most negative", order[-top:][::-1])):
        print(f"{title} overall influence (± 95% interval):")
        for row in rows:
            print(f"  {row.name:>14}  {row.influence:+.5f} ± {half * row.stderr:.5f}")
    for sign, keep in (("positive", lambda v: v > 0), ("negative", lambda v: v < 0)):
        names = [name for name, value, _ in found.significant if keep(value)]
        print(f"significantly {sign} at FDR {fdr:g} (one-sided Benjamini–Hochberg): {len(names)} {units}"
              + (": " + ", ".join(names) if names else ""))


def cmd_diagnose(args: argparse.Namespace) -> int:
    from ..analysis.convergence import diagnose_study
    from ..report.tables import diagnostics_lines, save_diagnostics

    context = study_context(args, "diagnose")
    print_partial_note(context)
    kinds = None if args.kinds == "all" else tuple(args.kinds.split(","))
    started = time.perf_counter()  # bootstrap and knockoffs of the study's own choice, as the report's
    diag = diagnose_study(context, kinds, tuple(args.estimators.split(",")), target_reliability=args.target)
    json_path, csv_path = save_diagnostics(diag, context.folder("diagnose"))  # its own folder: `report` never overwrites it
    config = context.config
    print(f"{diag.num_models} models, α = {config.design.alpha:g}, design {config.design.kind}; "
          f"diagnosed in {time.perf_counter() - started:.1f} s")
    print("\n".join(diagnostics_lines(diag, diag.table(), args.target)))
    print(f"diagnostics: {json_path}, {csv_path}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from ..report.build import build_report
    from ..report.leak_report import build_leak_report

    context = study_context(args, "report")
    if context.unit_kind == "example":  # its units are source examples: the leak page
        print(f"report: {build_leak_report(context)}")
        return 0
    report = build_report(context)
    if report.findings is not None:
        print("findings:\n" + "\n".join(report.findings.lines()))
    print(f"report: {report.html_path}")
    return 0


def cmd_project(args: argparse.Namespace) -> int:
    from ..analysis.projection import SourceProjection, check_top, project_study
    from ..report.command_files import write_projection

    check_top(args.top)
    context = study_context(args, "project", units="class")
    print_partial_note(context)
    projection = project_study(context, args.source_class, args.target_class, args.top)
    files = write_projection(context, projection, args.top, args.out)
    print(f"{context.results.num_models} models, output {context.kind}, estimator {context.estimator}")
    if isinstance(projection, SourceProjection):
        for title, entries in (("most positive", projection.most_positive), ("most negative", projection.most_negative)):
            print(f"target images with the {title} influence of source class {args.source_class!r}:")
            for entry in entries:
                print(f"  {entry.target_id:>20}  true {entry.true_label:>8}  {entry.influence:+.5f} ± {entry.stderr:.5f}")
    else:
        print(f"images of target class {args.target_class!r} by their most positive source class:")
        for group in projection.groups:
            print(f"  {group.source_class:>14}: {len(group.members)} images")
        print(f"  {'(none positive)':>14}: {len(projection.unclaimed)} images")
    print(f"figure: {files.figure}\ntable: {files.table}")
    return 0


def cmd_leaks(args: argparse.Namespace) -> int:
    from ..analysis.leaks import LEAK_ESTIMATORS

    counts = _model_counts(args)  # flags that go together, before the study is opened
    context = study_context(args, "leaks", units="example", estimators=LEAK_ESTIMATORS)
    print_partial_note(context)
    estimators = None if args.curve_estimators is None else tuple(args.curve_estimators.split(","))
    run_leaks(context, args.per_target, args.recall_k, args.top, args.curve, counts, estimators, args.out)
    return 0


def _model_counts(args: argparse.Namespace) -> list[int] | None:
    """``--models`` of ``--curve`` as numbers; refused without ``--curve`` (nor ``--curve-estimators``)."""
    if not args.curve:
        if args.models or args.curve_estimators:
            raise InputError("--models and --curve-estimators go with --curve")
        return None
    try:
        return [int(m) for m in args.models.split(",")] if args.models else None
    except ValueError:
        raise InputError(f"--models {args.models!r}: give whole numbers separated by commas, e.g. --models 100,200,400") from None


def run_leaks(
    context: "StudyContext",
    per_target: int = 3,
    recall_k: int = 10,
    top: int = 10,
    curve: bool = False,
    model_counts: list[int] | None = None,
    curve_estimators: tuple[str, ...] | None = None,
    out: Path | None = None,
) -> "LeakFindings":
    """``leaks`` on an opened context: fit, print and write the pairs (and the planted-fault scores
    and curve); the findings are returned for the demo's report, which then needs no second fit."""
    from ..analysis.planted import curve_request, study_leak_findings
    from ..analysis.projection import check_top
    from ..report.command_files import write_leak_pairs

    check_top(top)
    request = curve_request(context, model_counts, curve_estimators) if curve else None  # before any fit
    findings = study_leak_findings(context, per_target, recall_k)
    ranking = findings.ranking
    files = write_leak_pairs(context, findings, top, out)
    results = context.results
    print(f"{results.num_models} models, {len(results.unit_names)} source examples, {len(results.target_ids)} target "
          f"images, output {context.kind}, estimator {context.estimator}; fitted in {findings.seconds:.2f} s")
    for title, pairs in (("most positive (candidate leaks)", ranking.positive),
                         ("most negative (candidate mislabeled / misleading)", ranking.negative)):
        print(f"{title}: {len(pairs)} pairs")
        for pair in pairs[:top]:
            print(f"  #{pair.rank:<3} target {pair.target_id:>16} ({pair.target_label})  source {pair.source_id:>16} "
                  f"({pair.source_class})  {pair.coefficient:+.5f}")
    print(f"table: {files.table}\nfigure: {files.figure}")
    if findings.planted is not None:
        print("planted faults (source.plant):")
        _print_planted(findings.planted)
    if request is not None:
        _leak_curve(context, request, findings, recall_k, out)
    return findings


def _leak_curve(context: "StudyContext", request: "CurveRequest", findings: "LeakFindings", recall_k: int,
                out: Path | None) -> None:
    """``leaks --curve``: each step printed as it is fitted, then the curve's files."""
    from ..analysis.planted import study_planted_curve
    from ..report.command_files import write_planted_curve

    print(f"detection against the number of models ({', '.join(request.estimators)}):")
    fitted = {(context.results.num_models, context.estimator): findings.coefficients}
    scores = study_planted_curve(context, request, recall_k, on_step=_print_planted, fitted=fitted)
    files = write_planted_curve(context, scores, out)
    print(f"curve: {files.table}, {files.figure}")


def _print_planted(score: "PlantedScore") -> None:
    row = score.row()
    k = score.top_k
    print(f"  {score.estimator:>5} on {score.num_models:>5} models: leaks in the top {k} of their own image "
          f"{row[f'leak_recall_top{k}']:.0%} (exact {row[f'exact_recall_top{k}']:.0%}, augmented "
          f"{row[f'augmented_recall_top{k}']:.0%}; median rank {row['leak_median_rank']:g}); mislabels among the "
          f"{score.num_mislabels} most negative: {row['mislabel_precision_min']:.0%} "
          f"({row['mislabel_enrichment_min']:.1f}x random; by summed effect {row['mislabel_enrichment_sum']:.1f}x)")


def cmd_explain(args: argparse.Namespace) -> int:
    from ..analysis.debugging import explain_study
    from ..analysis.projection import check_top
    from ..report.command_files import write_explanations

    check_top(args.top)  # --count and --top are positive by their types
    context = study_context(args, "explain", units="class")
    print_partial_note(context)
    found = explain_study(context, args.image or (), args.count, args.top)
    files = write_explanations(context, found, args.out)
    print(f"{context.results.num_models} models, output {context.kind}, estimator {context.estimator}")
    for e in found.explanations:
        print(f"{e.target_id} (true {e.true_label}): right in {e.accuracy:.0%} of models, mean p_true {e.mean_p_true:.3f}")
        for s in e.suspects:
            print(f"  {s.name:>14}  {s.influence:+.5f} [{s.ci95_low:+.5f}, {s.ci95_high:+.5f}]  accuracy "
                  f"{s.accuracy_with:.2f} with ({s.models_with}) / {s.accuracy_without:.2f} without ({s.models_without}), "
                  f"p_true {s.p_true_with:.3f} / {s.p_true_without:.3f}")
    print(f"figure: {files.figure}\ntable: {files.table}")
    return 0
