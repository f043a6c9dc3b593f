"""Commands that read a finished study: ``influence``, ``diagnose``, ``report``, ``project``, ``explain``,
``leaks``."""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING

from ..errors import InputError
from .common import analysis_choice, open_finished, require_class_units, require_example_units, target_folder, target_line

if TYPE_CHECKING:
    from ..analysis.planted import LeakFindings, PlantedScore
    from ..data.planted import PlantedFaults


def cmd_influence(args: argparse.Namespace) -> int:
    import numpy as np

    from ..analysis.rankings import example_influence, overall_influence, per_target_class_influence, ranked
    from ..evaluate.fdr import significant_classes
    from ..report.tables import write_overall_csv, write_per_target_csv

    results = open_finished(args.study, args.partial, args.target_set)
    kind, estimator = analysis_choice(results, args)  # an unknown --kind is refused before the folder exists
    out = args.out or target_folder(results, args.study / "influence")
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    overall = overall_influence(results, kind, estimator)
    per_class = per_target_class_influence(results, kind, estimator)
    examples = example_influence(results, kind, estimator)
    seconds = time.perf_counter() - started
    suffix = f"{kind}_{estimator}"
    write_overall_csv(overall, out / f"overall_{suffix}.csv")
    write_per_target_csv(per_class, out / f"per_target_class_{suffix}.csv")
    np.save(out / f"example_values_{suffix}.npy", examples.values)
    np.save(out / f"example_stderr_{suffix}.npy", examples.stderr)
    order = ranked(overall)
    units = "source examples" if results.unit_kind == "example" else "classes"
    print(f"{results.num_models} models, {len(results.class_names)} {units}, {len(results.target_ids)} targets"
          f"{target_line(results)}, output {kind}, estimator {estimator}; estimated in {seconds:.2f} s")
    half = overall.critical_value(0.95)
    for title, rows in (("most positive", order[: args.top]), ("most negative", order[-args.top :][::-1])):
        print(f"{title} overall influence (± 95% interval):")
        for row in rows:
            print(f"  {row.name:>14}  {row.influence:+.5f} ± {half * row.stderr:.5f}")
    significant = significant_classes(overall, 0, args.fdr)
    for sign, keep in (("positive", lambda v: v > 0), ("negative", lambda v: v < 0)):
        names = [name for name, value, _ in significant if keep(value)]
        print(f"significantly {sign} at FDR {args.fdr:g} (one-sided Benjamini–Hochberg): {len(names)} {units}"
              + (": " + ", ".join(names) if names else ""))
    print(f"tables in {out}")
    return 0


def cmd_diagnose(args: argparse.Namespace) -> int:
    from ..analysis.convergence import diagnose
    from ..report.tables import diagnostics_lines, write_diagnostics_csv

    results = open_finished(args.study, args.partial, args.target_set)
    kinds = results.output_kinds if args.kinds == "all" else tuple(args.kinds.split(","))
    estimators = tuple(args.estimators.split(","))
    analysis = results.config.analysis  # bootstrap and knockoffs of the study's own choice, as the report's
    primary = (analysis.output_kind if analysis.output_kind in kinds else kinds[0],
               analysis.estimator if analysis.estimator in estimators else estimators[0])
    started = time.perf_counter()
    diag = diagnose(results, kinds, estimators, primary=primary, target_reliability=args.target)
    out = target_folder(results, args.study / "diagnose")  # its own folder: `report` never overwrites it
    out.mkdir(parents=True, exist_ok=True)
    diag.save(out / "diagnostics.json")
    rows = diag.table()
    write_diagnostics_csv(rows, out / "diagnostics.csv")
    print(f"{results.num_models} models, α = {results.config.design.alpha:g}, design {results.config.design.kind}; "
          f"diagnosed in {time.perf_counter() - started:.1f} s")
    print("\n".join(diagnostics_lines(diag, rows, args.target)))
    print(f"diagnostics: {out / 'diagnostics.json'}, {out / 'diagnostics.csv'}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from ..report.build import build_report
    from ..report.leak_report import build_leak_report
    from ..study.store import StudyStore

    if StudyStore.open(args.study).example_units:
        if args.target_set:
            raise InputError("--target: the report of an example-level study is drawn for its primary target")
        print(f"report: {build_leak_report(args.study, kind=args.kind, estimator=args.estimator)}")
        return 0
    report = build_report(args.study, kind=args.kind, estimator=args.estimator, target=args.target_set)
    if report.findings is not None:
        print("findings:\n" + "\n".join(report.findings.lines()))
    print(f"report: {report.html_path}")
    return 0


def _check_projection_request(results, args: argparse.Namespace) -> None:  # type: ignore[no-untyped-def]
    """The class named and ``--top`` against the study's data, before any estimate: ``--top`` past
    the images there are would only be cut after the estimate (and a huge figure drawn)."""
    from ..analysis.projection import check_top, find_source_class, find_target_class, source_projection_limit

    count = len(results.target_ids)
    if args.source_class is not None:
        find_source_class(results.class_names, args.source_class)
        most = source_projection_limit(count)
        check_top(args.top, most, f"{most}, half of the study's {count} target test images (no image is listed at both ends)")
    else:
        find_target_class(results.target_class_names, args.target_class)
        check_top(args.top, count, f"the study's {count} target test images")


def cmd_project(args: argparse.Namespace) -> int:
    from ..analysis.projection import check_top, load_study_images, project_source_class, project_target_class
    from ..analysis.rankings import example_influence
    from ..report.build import class_thumbnails
    from ..report.plots import plot_source_projection, plot_target_projection
    from ..report.projection_tables import file_stem, write_source_projection_csv, write_target_projection_csv

    check_top(args.top)
    require_class_units(args.study, "project")
    results = open_finished(args.study, args.partial, args.target_set)
    kind, estimator = analysis_choice(results, args)
    _check_projection_request(results, args)
    out = args.out or target_folder(results, args.study / "projection")
    out.mkdir(parents=True, exist_ok=True)
    influence = example_influence(results, kind, estimator)
    images = load_study_images(args.study, results.target_name)
    print(f"{results.num_models} models, output {kind}, estimator {estimator}")
    if args.source_class is not None:
        projection = project_source_class(
            influence, results.target_labels, results.target_class_names, args.source_class, args.top
        )
        stem = out / f"source_{file_stem(args.source_class)}_{kind}_{estimator}"
        write_source_projection_csv(projection, stem.with_suffix(".csv"))
        plot_source_projection(projection, images, stem.with_suffix(".png"))
        for title, entries in (("most positive", projection.most_positive), ("most negative", projection.most_negative)):
            print(f"target images with the {title} influence of source class {args.source_class!r}:")
            for entry in entries:
                print(f"  {entry.target_id:>20}  true {entry.true_label:>8}  {entry.influence:+.5f} ± {entry.stderr:.5f}")
    else:
        grouping = project_target_class(influence, results.target_labels, results.target_class_names, args.target_class)
        stem = out / f"target_{file_stem(args.target_class)}_{kind}_{estimator}"
        write_target_projection_csv(grouping, stem.with_suffix(".csv"))
        plot_target_projection(grouping, images, class_thumbnails(images), stem.with_suffix(".png"), args.top)
        print(f"images of target class {args.target_class!r} by their most positive source class:")
        for group in grouping.groups:
            print(f"  {group.source_class:>14}: {len(group.members)} images")
        print(f"  {'(none positive)':>14}: {len(grouping.unclaimed)} images")
    print(f"figure: {stem.with_suffix('.png')}\ntable: {stem.with_suffix('.csv')}")
    return 0


def cmd_leaks(args: argparse.Namespace) -> int:
    leaks_findings(args)
    return 0


def leaks_findings(args: argparse.Namespace) -> "LeakFindings":
    """``leaks``: fit, print and write the pairs (and the planted-fault scores and curve); the
    findings are returned for the demo's report, which then needs no second fit."""
    from ..analysis.leaks import check_per_target
    from ..analysis.planted import study_leak_findings, study_planted_curve
    from ..analysis.projection import check_top, load_study_images
    from ..data.planted import read_planted
    from ..report.leak_tables import write_leak_pairs_csv, write_planted_curve_csv
    from ..report.plots import plot_leak_pairs, plot_planted_curve

    check_top(args.top)
    check_per_target(args.per_target)
    require_example_units(args.study, "leaks")
    results = open_finished(args.study, args.partial)
    kind = args.kind or results.config.analysis.output_kind
    curve_request = _planted_curve_request(args, read_planted(results.unit_names), results.num_models)  # before any fit
    findings = study_leak_findings(results, kind, args.estimator, args.per_target, args.recall_k, results.config.seed)
    ranking = findings.ranking
    out = args.out or args.study / "leaks"
    out.mkdir(parents=True, exist_ok=True)
    write_leak_pairs_csv(ranking, out / "pairs.csv")
    plot_leak_pairs(ranking, load_study_images(args.study), out / "pairs.png", args.top)
    print(f"{results.num_models} models, {len(results.unit_names)} source examples, {len(results.target_ids)} target "
          f"images, output {kind}, estimator {args.estimator}; fitted in {findings.seconds:.2f} s")
    for title, pairs in (("most positive (candidate leaks)", ranking.positive),
                         ("most negative (candidate mislabeled / misleading)", ranking.negative)):
        print(f"{title}: {len(pairs)} pairs")
        for pair in pairs[: args.top]:
            print(f"  #{pair.rank:<3} target {pair.target_id:>16} ({pair.target_label})  source {pair.source_id:>16} "
                  f"({pair.source_class})  {pair.coefficient:+.5f}")
    print(f"table: {out / 'pairs.csv'}\nfigure: {out / 'pairs.png'}")
    if findings.planted is not None:
        print("planted faults (source.plant):")
        _print_planted(findings.planted)
    if curve_request is not None:
        counts, estimators = curve_request
        print(f"detection against the number of models ({', '.join(estimators)}):")
        scores = study_planted_curve(results, kind, estimators, counts, args.recall_k, results.config.seed,
                                     on_step=_print_planted, fitted={(results.num_models, args.estimator): findings.coefficients})
        write_planted_curve_csv(scores, out / "planted_curve.csv")
        plot_planted_curve(scores, out / "planted_curve.png")
        print(f"curve: {out / 'planted_curve.csv'}, {out / 'planted_curve.png'}")
    return findings


def _planted_curve_request(args: argparse.Namespace, planted: "PlantedFaults", available: int) -> tuple[list[int], list[str]] | None:
    """The model counts and estimators of ``--curve``, checked before any fitting."""
    from ..analysis.leaks import check_leak_estimator
    from ..analysis.planted import check_model_counts, default_model_counts

    if args.recall_k < 1:
        raise InputError(f"--recall-k must be at least 1 (got {args.recall_k})")
    if not args.curve:
        if args.models or args.curve_estimators:
            raise InputError("--models and --curve-estimators go with --curve")
        return None
    if planted.empty:
        raise InputError(
            f"--curve scores detection of planted faults, and {args.study} has none (no source.plant in its config); "
            "run a study with planted faults, such as configs/leaks.yaml"
        )
    try:
        counts = [int(m) for m in args.models.split(",")] if args.models else default_model_counts(available)
    except ValueError:
        raise InputError(f"--models {args.models!r}: give whole numbers separated by commas, e.g. --models 100,200,400") from None
    estimators = list(dict.fromkeys(check_leak_estimator(e.strip()) for e in (args.curve_estimators or args.estimator).split(",")))
    return check_model_counts(counts, available), estimators


def _print_planted(score: "PlantedScore") -> None:
    row = score.row()
    k = score.top_k
    print(f"  {score.estimator:>5} on {score.num_models:>5} models: leaks in the top {k} of their own image "
          f"{row[f'leak_recall_top{k}']:.0%} (exact {row[f'exact_recall_top{k}']:.0%}, augmented "
          f"{row[f'augmented_recall_top{k}']:.0%}; median rank {row['leak_median_rank']:g}); mislabels among the "
          f"{score.num_mislabels} most negative: {row['mislabel_precision_min']:.0%} "
          f"({row['mislabel_enrichment_min']:.1f}x random; by summed effect {row['mislabel_enrichment_sum']:.1f}x)")


def cmd_explain(args: argparse.Namespace) -> int:
    from ..analysis.debugging import explain_targets, find_target, most_mispredicted
    from ..analysis.projection import check_top, load_study_images
    from ..report.plots import plot_explanations
    from ..report.projection_tables import file_stem, write_explanations_csv

    check_top(args.top)  # --count and --top are positive by their types
    require_class_units(args.study, "explain")
    results = open_finished(args.study, args.partial, args.target_set)
    kind, estimator = analysis_choice(results, args)
    if args.image:
        columns = [find_target(results, image) for image in args.image]
        name, title = "targets_" + file_stem("+".join(args.image)), "Most negative source classes of the chosen target images"
    else:
        columns = list(most_mispredicted(results, args.count))
        name, title = "most_mispredicted", "Most negative source classes of the most often mispredicted target images"
    out = args.out or target_folder(results, args.study / "explain")
    out.mkdir(parents=True, exist_ok=True)
    explanations = explain_targets(results, columns, kind, estimator, args.top)
    stem = out / f"{name}_{kind}_{estimator}"
    write_explanations_csv(explanations, stem.with_suffix(".csv"))
    plot_explanations(explanations, load_study_images(args.study, results.target_name), stem.with_suffix(".png"), title)
    print(f"{results.num_models} models, output {kind}, estimator {estimator}")
    for e in explanations:
        print(f"{e.target_id} (true {e.true_label}): right in {e.accuracy:.0%} of models, mean p_true {e.mean_p_true:.3f}")
        for s in e.suspects:
            print(f"  {s.name:>14}  {s.influence:+.5f} [{s.ci95_low:+.5f}, {s.ci95_high:+.5f}]  accuracy "
                  f"{s.accuracy_with:.2f} with ({s.models_with}) / {s.accuracy_without:.2f} without ({s.models_without}), "
                  f"p_true {s.p_true_with:.3f} / {s.p_true_without:.3f}")
    print(f"figure: {stem.with_suffix('.png')}\ntable: {stem.with_suffix('.csv')}")
    return 0
