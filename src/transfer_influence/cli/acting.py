"""Commands that act on a study's influences by retraining or predicting: ``counterfactual``,
``compare-rankings``, ``whatif``, ``handpicked``, ``verify``. Each handler is parse → study context
(``common.study_context``) → the analysis entry function → print; the entry functions refuse the
wrong kind of study themselves."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ..errors import InputError
from .common import print_partial_note, study_context

if TYPE_CHECKING:
    from ..analysis.context import StudyContext


def _ks(text: str | None) -> list[int] | None:
    """``--k 5,10,20`` as numbers (None: the defaults)."""
    try:
        return [int(k) for k in text.split(",")] if text else None
    except ValueError:
        raise InputError(f"--k {text!r}: give whole numbers separated by commas, e.g. --k 5,10,20") from None


def _ranking_context(args: argparse.Namespace) -> "StudyContext | None":
    """``--ranking-from OTHER``: that study's context, whose own analysis settings rank unless
    ``--kind`` / ``--estimator`` say otherwise (None: the study ranks itself)."""
    from ..analysis.context import StudyContext

    if args.ranking_from is None:
        return None
    return StudyContext.open(args.ranking_from, kind=args.kind, estimator=args.estimator, command="counterfactual")


def cmd_counterfactual(args: argparse.Namespace) -> int:
    from ..analysis.counterfactual import run_counterfactual, write_counterfactual
    from ..analysis.recommendation import recommendation_lines
    from ..report.plots import plot_counterfactual

    ks = _ks(args.k)
    context = study_context(args, "counterfactual")
    result = run_counterfactual(context, ks, args.repeats, _ranking_context(args))
    files = write_counterfactual(result)
    plot_counterfactual(result, result.sweep_dir / "counterfactual.png")
    r = result.ranking
    print(f"ranking: {r.estimator} on {r.kind} from {r.source} ({r.num_models} models"
          f"{', selection half of the target' if r.on_selection_half else ''}); scored on "
          f"{int((~result.selection).sum())} held-apart target images; {len(result.seeds)} paired seeds; "
          f"{len(result.executed)} retrains run now")
    curve = r.whatif
    if curve is None:
        print(f"what-if rule: not available ({r.whatif_note})")
    else:
        print(f"what-if rule: removing the {curve.best_k} most negative classes is predicted best "
              f"({curve.predicted_gain:+.4f} accuracy on the selection half; k = 0 … {len(curve.predicted) - 1} predicted)")
    print(f"{'selection':>11} {'k':>4} {'mean':>7} {'std':>7} {'n':>3} {'diff':>8} {'SE':>7}  > 2 SE*")
    for a in result.arms:
        diff = "" if a.differences is None else f"{a.diff_vs_full:+8.4f} {a.diff_se:7.4f}  {'yes' if a.beats_full else 'no'}"
        print(f"{a.arm.selection:>11} {a.arm.k:>4} {a.mean:7.4f} {a.std:7.4f} {a.accuracy.size:>3} {diff}")
    print("* each arm's own comparison on the selection seeds, unadjusted for picking the best of many: not a recommendation")
    for line in recommendation_lines(result.recommendation):
        print(line)
    print(f"the source to train on: {files['recommended']}; the recommendation's numbers: {files['recommendation']}")
    print(f"summary: {files['summary']}; figure: {result.sweep_dir / 'counterfactual.png'}")
    return 0


def cmd_compare_rankings(args: argparse.Namespace) -> int:
    from ..analysis.ranking_comparison import best_removal_lines, comparison_rows, read_ranking_sweeps, write_comparison

    context = study_context(args, "compare-rankings")
    sweeps = read_ranking_sweeps(context)
    rows = comparison_rows(sweeps)
    path = write_comparison(context, rows)

    def pm(mean: object, se: object) -> str:
        return "" if mean == "" else f"{float(mean):+.4f} ± {float(se):.4f}"  # type: ignore[arg-type]

    print(f"{len(sweeps[0].seeds)} paired seeds; differences ± their standard error")
    print(f"{'ranking':>22} {'models':>6} {'arm':>14} {'vs full':>18} {'random − top':>18} {'bottom − ' + sweeps[0].label:>18}")
    for row in rows:
        arm = f"{row['selection']}-{row['k']}"
        print(f"{str(row['ranking']):>22} {row['models']:>6} {arm:>14} {pm(row['diff_vs_full'], row['diff_vs_full_se']):>18} "
              f"{pm(row['random_minus_top'], row['random_minus_top_se']):>18} "
              f"{pm(row['bottom_minus_first_ranking_bottom'], row['bottom_minus_first_ranking_bottom_se']):>18}")
    for line in best_removal_lines(sweeps):
        print(line)
    print(f"table: {path}")
    return 0


def cmd_whatif(args: argparse.Namespace) -> int:
    from ..analysis.whatif import what_if

    context = study_context(args, "whatif")
    result = what_if(context, [c.strip() for c in args.remove.split(",") if c.strip()], scaling=args.scaling,
                     level=args.level)
    print_partial_note(context)
    half = result.differential_half_width(0.95)
    intervals = [f"[{a:.4f}, {b:.4f}]" for a, b in zip(*result.interval(0.95))] if result.has_interval else None
    print(f"predicted target accuracy of the full source ({result.num_classes} classes) without "
          f"{', '.join(result.removed)}:")
    print(f"{'targets':>14} {'full source':>11} {'predicted':>9} {'95% interval':>17} {'vs average classes':>19}")
    for j, column in enumerate(result.columns):
        interval = intervals[j] if intervals is not None else f"{'none':>17}"
        print(f"{column:>14} {result.full_accuracy[j]:>11.4f} {result.predicted[j]:>9.4f} "
              f"{interval} {result.differential[j]:>+10.4f} ± {half[j]:.4f}")
    if intervals is None:
        print(f"no interval: {result.interval_note}")
    if result.any_clipped:
        clipped = [c for c, flag in zip(result.columns, result.clipped) if flag]  # type: ignore[arg-type]
        print(f"clipped: the linear prediction fell outside 0–1 for {', '.join(clipped)} "
              "and is shown at the bound; an accuracy cannot leave it, so the datamodel's extrapolation is off there")
    print(f"note: {result.extrapolation}; the last column is the change from removing these classes rather "
          f"than as many average ones, within sources of {result.subset_size} classes (no extrapolation; "
          f"± its 95% t half-width)")
    return 0


def cmd_handpicked(args: argparse.Namespace) -> int:
    from ..analysis.handpicked import run_handpicked, write_handpicked

    result = run_handpicked(study_context(args, "handpicked"), args.mapping, args.repeats)
    files = write_handpicked(result)
    full, picked = result.full, result.hand_picked
    print(f"relation: {result.relation.origin}; keeping {len(result.kept)} of {len(result.class_names)} source classes "
          f"({', '.join(result.class_names[c] for c in result.kept)}); scored on {int(result.scoring.sum())} held-apart "
          f"target images; {len(result.seeds)} paired seeds; {len(result.executed)} retrains run now")
    if result.relation.unmapped:
        print(f"target classes with no related source class: {', '.join(result.relation.unmapped)}")
    print(f"full source  {full.mean:.4f} ± {full.std:.4f}")
    print(f"hand-picked  {picked.mean:.4f} ± {picked.std:.4f}  difference {picked.diff_vs_full:+.4f} "
          f"(SE {picked.diff_se:.4f}; > 2 SE: {'yes' if picked.beats_full else 'no'})")
    print(f"summary: {files['summary']}; details: {files['hand_picked']}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    if args.summary and args.remove is not None:
        raise InputError("--remove goes with --image: the summary removes each image's most negative class itself")
    if args.image is not None and (args.pairs is not None or args.classes is not None):
        raise InputError("--pairs and --classes go with --summary, not --image")
    context = study_context(args, "verify")
    return _verify_target(args, context) if args.image is not None else _verify_summary(args, context)


def _verify_target(args: argparse.Namespace, context: "StudyContext") -> int:
    from ..analysis.verify import target_file_stem, verify_target, write_target
    from ..report.plots import plot_verification
    from ..report.tables import class_label as _label

    result = verify_target(context, args.image, args.remove, args.repeats)
    files = write_target(result)
    figure = result.sweep_dir / f"{target_file_stem(result.target_id)}.png"
    plot_verification(result, figure)
    how = "its most negative source class" if result.chosen else "source class"
    print(f"{result.target_id} (true {result.true_label_name}): {result.repeats} seeds of the full source with and "
          f"without {how} {_label(result.removed)} (influence {result.influence:+.5f}, {result.output_kind}, "
          f"{result.estimator}); {len(result.executed)} retrains run now")
    print(f"{'label':>14} {'with':>6} {'without':>8}")
    for row in result.rows():
        if row["count_with"] or row["count_without"] or row["is_true_label"]:
            mark = " (true)" if row["is_true_label"] else ""
            print(f"{_label(str(row['label'])):>14} {row['share_with']:>6.0%} {row['share_without']:>8.0%}{mark}")
    print(f"correct: {result.correct_with:.0%} with, {result.correct_without:.0%} without ({result.change} without the class)")
    print(f"table: {files['table']}; details: {files['details']}; figure: {figure}")
    return 0


def _verify_summary(args: argparse.Namespace, context: "StudyContext") -> int:
    from ..analysis.verify import DEFAULT_CLASSES, DEFAULT_PAIRS, verify_summary, write_summary

    pairs = DEFAULT_PAIRS if args.pairs is None else args.pairs
    classes = DEFAULT_CLASSES if args.classes is None else args.classes
    summary = verify_summary(context, pairs, classes, args.repeats)
    files = write_summary(summary)
    print(f"{summary.num_models} models, {summary.output_kind}, {summary.estimator}; {len(summary.seeds)} seeds with and "
          f"without each of {len(summary.classes)} classes ({', '.join(summary.classes)}); "
          f"{len(summary.executed)} retrains run now")
    print(f"{'pairs':>38} {'count':>5} {'better':>7} {'worse':>7} {'same':>7}")
    for title, shares in (
        (f"top {len(summary.top_pairs)} pairs with a retrained class", summary.pair_shares),
        (f"{summary.per_class} most negative images per class", summary.class_image_shares),
    ):
        print(f"{title:>38} {shares.count:>5} {shares.better:>7.1%} {shares.worse:>7.1%} {shares.same:>7.1%}")
    print("better / worse / same: predicted correctly by more / fewer / as many seeds without the class")
    print(f"table: {files['table']}; details: {files['details']}")
    return 0
