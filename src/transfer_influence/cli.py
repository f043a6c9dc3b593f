"""Command line: ``transfer-influence run|work|influence|diagnose|report|plan|demo``."""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path
from typing import Sequence

from .errors import InputError, UserError
from .study.config import StudyConfig, load_config, packaged_config

EXIT_USAGE = 2
"""A problem the user can fix: bad config, bad input, a study that does not match."""
EXIT_INTERNAL = 1
"""A bug in transfer-influence: the message says so, ``--debug`` shows the traceback."""
EXIT_INTERRUPTED = 130


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", type=int, help="number of subset models (overrides num_models)")
    parser.add_argument("--workers", type=int, help="worker processes (default: one per core)")
    parser.add_argument("--serial", action="store_true", help="run in this process (no pool)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.add_argument("--stop-at", type=float, metavar="R",
                        help="stop early once the split-half Spearman of the class × target-class influences reaches R")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="transfer-influence",
        description="Measure how each source class drives a transfer-learned model's target predictions.",
    )
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="plan, train and store a study (resumable: run again to continue)")
    run.add_argument("config", type=Path, help="study config (YAML)")
    run.add_argument("--out", type=Path, help="study directory (default: studies/<name>)")
    _add_run_options(run)

    work = sub.add_parser(
        "work",
        help="run one run of a study created by `run`, in this process (for cluster schedulers; idempotent)",
        description="Run exactly one run of an existing study from its stored config and write its run file. "
        "A run whose file exists is left alone (exit 0), so a scheduler may call this again safely.",
    )
    work.add_argument("study", type=Path, help="study directory (created by `transfer-influence run`)")
    work.add_argument("--index", type=int, required=True, help="run index: 0 to num_models-1 for subset runs, "
                      "0 to baselines.repeats-1 for baselines")
    work.add_argument("--kind", default="subset", choices=["subset", "all_source", "random_init"],
                      help="which run of that index (default: subset)")

    infl = sub.add_parser("influence", help="estimate class influences from a study's finished runs")
    infl.add_argument("study", type=Path)
    infl.add_argument("--kind", help="output kind: p_true, correct, raw_margin, softmax_margin "
                      "(default: the study's analysis.output_kind)")
    infl.add_argument("--top", type=int, default=10, help="classes to print at each end of the ranking")
    infl.add_argument("--out", type=Path, help="directory for CSV/NPY files (default: STUDY/influence)")
    infl.add_argument("--estimator", choices=["dim", "ridge"],
                      help="dim: difference of means (Algorithm 1); ridge: regression on the inclusion mask "
                      "(default: the study's analysis.estimator)")
    infl.add_argument("--partial", action="store_true",
                      help="estimate from the runs finished so far, while the study is still running")
    infl.add_argument("--fdr", type=float, default=0.1, help="false-discovery rate for the significant-class list")

    diag = sub.add_parser("diagnose", help="convergence diagnostics: split-half, bootstrap, held-out, knockoff FDR")
    diag.add_argument("study", type=Path)
    diag.add_argument("--kinds", default="all", help="comma-separated output kinds, or 'all'")
    diag.add_argument("--estimators", default="dim,ridge")
    diag.add_argument("--target", type=float, default=0.8, help="split-half Spearman to project the model count for")
    diag.add_argument("--partial", action="store_true", help="allow a study that is still running")

    plan = sub.add_parser("plan", help="run short pilots and recommend alpha, design and number of models for a budget")
    plan.add_argument("config", type=Path)
    plan.add_argument("--out", type=Path, help="directory for the pilot studies (default: studies/<name>-pilots)")
    plan.add_argument("--alphas", default="0.5,0.2,0.1", help="candidate subset ratios")
    plan.add_argument("--pilot-seconds", type=float, default=60.0, help="training time per pilot")
    plan.add_argument("--target", type=float, default=0.8, help="split-half Spearman to reach")
    plan.add_argument("--budget-minutes", type=float, default=10.0, help="training time the real study may take")
    plan.add_argument("--level", default="target_class", choices=["overall", "target_class", "example"])

    report = sub.add_parser("report", help="write plots, tables and report.html for a study")
    report.add_argument("study", type=Path)
    report.add_argument("--kind", help="output kind (default: the config's analysis.output_kind)")
    report.add_argument("--estimator", choices=["dim", "ridge"], help="default: the config's analysis.estimator")

    demo = sub.add_parser("demo", help="run the embedded default study (glyphs + clothing → MNIST digits) and its report")
    demo.add_argument("--out", type=Path, default=Path("demo-study"))
    demo.add_argument("--config", type=Path, help="use this config instead of the packaged demo")
    _add_run_options(demo)
    return parser


def _apply_overrides(config: StudyConfig, args: argparse.Namespace) -> StudyConfig:
    changes: dict[str, object] = {}
    if args.models is not None:
        changes["num_models"] = args.models
    if args.workers is not None:
        changes["execution.workers"] = args.workers
    if args.serial:
        changes["execution.executor"] = "serial"
    if args.stop_at is not None:
        changes["execution.stop_reliability"] = args.stop_at
    return config.with_overrides(**changes) if changes else config


def _cmd_run(args: argparse.Namespace) -> int:
    from .pipeline.run import run_study

    config = _apply_overrides(load_config(args.config), args)
    out = args.out or Path("studies") / config.name
    report = run_study(config, out, progress=not args.quiet)
    t = report.timings
    print(
        f"{out}: {report.planned} runs planned, {report.skipped} already finished, {len(report.executed)} run now "
        f"in {t['runs_wall_seconds']:.0f} s"
    )
    return 0


def _cmd_work(args: argparse.Namespace) -> int:
    from .execute.single import run_single

    outcome = run_single(args.study, args.kind, args.index, stream=sys.stderr)
    if outcome.summary is None:
        print(f"{outcome.run_id} is already done ({outcome.path}); nothing to run")
    else:
        print(
            f"{outcome.run_id} done in {sum(outcome.summary.seconds.values()):.1f} s "
            f"(target accuracy {outcome.summary.target_accuracy:.3f}): {outcome.path}"
        )
    return 0


def _open_finished(study: Path, partial: bool):  # type: ignore[no-untyped-def]
    """The study's results; an unfinished study needs ``--partial`` so that nobody mistakes an
    anytime estimate for the final one."""
    from .study.results import open_study

    results = open_study(study)
    planned = results.config.num_models
    if results.num_models < planned:
        if not partial:
            raise InputError(
                f"{study} has {results.num_models} of {planned} models finished; pass --partial for an "
                "estimate from the finished ones, or run the study to the end"
            )
        print(f"partial estimate: {results.num_models} of {planned} models finished")
    if results.num_models < 3:
        raise InputError(f"{study} has {results.num_models} finished models; influences need at least 3")
    return results


def _cmd_influence(args: argparse.Namespace) -> int:
    import numpy as np

    from .analysis.rankings import example_influence, overall_influence, per_target_class_influence, ranked
    from .evaluate.fdr import significant_classes
    from .report.tables import write_overall_csv, write_per_target_csv

    results = _open_finished(args.study, args.partial)
    kind = args.kind or results.config.analysis.output_kind
    estimator = args.estimator or results.config.analysis.estimator
    out = args.out or args.study / "influence"
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
    print(f"{results.num_models} models, {len(results.class_names)} classes, {len(results.target_ids)} targets, "
          f"output {kind}, estimator {estimator}; estimated in {seconds:.2f} s")
    half = overall.critical_value(0.95)
    for title, rows in (("most positive", order[: args.top]), ("most negative", order[-args.top :][::-1])):
        print(f"{title} overall influence (± 95% interval):")
        for row in rows:
            print(f"  {row.name:>14}  {row.influence:+.5f} ± {half * row.stderr:.5f}")
    significant = significant_classes(overall, 0, args.fdr)
    print(f"significantly non-zero at FDR {args.fdr:g}: {len(significant)} classes"
          + (": " + ", ".join(name for name, _, _ in significant) if significant else ""))
    print(f"tables in {out}")
    return 0


def _cmd_diagnose(args: argparse.Namespace) -> int:
    from .analysis.convergence import diagnose

    results = _open_finished(args.study, args.partial)
    kinds = results.output_kinds if args.kinds == "all" else tuple(args.kinds.split(","))
    estimators = tuple(args.estimators.split(","))
    started = time.perf_counter()
    diag = diagnose(results, kinds, estimators, primary=(kinds[0], estimators[0]), target_reliability=args.target)
    out = args.study / "report"
    out.mkdir(exist_ok=True)
    diag.save(out / "diagnostics.json")
    rows = diag.table()
    key = f"models_for_split_half_{args.target:g}"
    print(f"{results.num_models} models, α = {results.config.design.alpha:g}, design {results.config.design.kind}; "
          f"diagnosed in {time.perf_counter() - started:.1f} s")
    print(f"{'output':>15} {'estimator':>9} {'level':>13} {'split-half':>10} {'held-out':>9} {'models for ' + format(args.target, 'g'):>15}")
    for r in rows:
        print(f"{r['output_kind']:>15} {r['estimator']:>9} {r['level']:>13} {r['split_half_spearman']:>10.3f} "
              f"{r['held_out_spearman']:>9.3f} {str(r[key]):>15}")
    print(f"diagnostics: {out / 'diagnostics.json'}")
    return 0


def _cmd_plan(args: argparse.Namespace) -> int:
    from .pipeline.pilots import run_pilots

    config = load_config(args.config)
    alphas = tuple(float(a) for a in args.alphas.split(","))
    out = args.out or Path("studies") / f"{config.name}-pilots"
    recommendation = run_pilots(
        config, out, alphas, args.pilot_seconds, args.target, args.budget_minutes, args.level, stream=sys.stdout
    )
    recommendation.write(sys.stdout)
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from .report.build import build_report

    report = build_report(args.study, kind=args.kind, estimator=args.estimator)
    print(f"report: {report.html_path}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .evaluate.reliability import LEVEL_NAMES
    from .pipeline.run import run_study
    from .report.build import build_report

    config = _apply_overrides(load_config(args.config or packaged_config("demo")), args)
    started = time.perf_counter()
    run = run_study(config, args.out, progress=not args.quiet)
    report_started = time.perf_counter()
    report = build_report(args.out)
    report_seconds = time.perf_counter() - report_started
    total = time.perf_counter() - started
    t = run.timings
    print(f"\nstudy: {args.out} ({report.overall.num_models} models)")
    for label, (mean, std, count) in report.baselines.rows.items():
        print(f"  target accuracy, {label}: {mean:.3f} ± {std:.3f} (n={count})")
    if report.lookalikes is not None:
        lk = report.lookalikes
        print(f"  digits with a look-alike glyph in their top {lk.top_k}: {lk.num_hits}/{len(lk.checked)}")
    if report.diagnostics is not None:
        analysis = config.analysis
        curves = report.diagnostics.reliability[(analysis.output_kind, analysis.estimator)]
        print(
            f"  split-half Spearman ({analysis.estimator}, {analysis.output_kind}, α = {config.design.alpha:g}): "
            + ", ".join(f"{LEVEL_NAMES[level]} {curve.at_full_size:.2f}" for level, curve in curves.items())
        )
    print(
        f"time: data {t['data_seconds']:.1f} s, runs {t['runs_wall_seconds']:.1f} s "
        f"(train {t['train_seconds_total']:.0f} s + transfer {t['transfer_seconds_total']:.0f} s of worker time), "
        f"report {report_seconds:.1f} s, total {total:.1f} s"
    )
    print(f"report: {report.html_path}")
    return 0


COMMANDS = {
    "run": _cmd_run,
    "work": _cmd_work,
    "influence": _cmd_influence,
    "diagnose": _cmd_diagnose,
    "plan": _cmd_plan,
    "report": _cmd_report,
    "demo": _cmd_demo,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (UserError, FileNotFoundError) as exc:
        if args.debug:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted: finished runs are kept; run the same command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - anything else is a bug: say so, keep the traceback reachable
        if args.debug:
            traceback.print_exc()
        print(
            f"internal error: {exc.__class__.__name__}: {exc}\n"
            "this is a bug in transfer-influence; run again with --debug for the traceback and report it",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
