"""Command line: ``transfer-influence run|influence|report|demo``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Sequence

from .config import ConfigError, StudyConfig, load_config, packaged_config

EXIT_USAGE = 2


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", type=int, help="number of subset models (overrides num_models)")
    parser.add_argument("--workers", type=int, help="worker processes (default: one per core)")
    parser.add_argument("--serial", action="store_true", help="run in this process (no pool)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="transfer-influence",
        description="Measure how each source class drives a transfer-learned model's target predictions.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="plan, train and store a study (resumable: run again to continue)")
    run.add_argument("config", type=Path, help="study config (YAML)")
    run.add_argument("--out", type=Path, help="study directory (default: studies/<name>)")
    _add_run_options(run)

    infl = sub.add_parser("influence", help="estimate class influences from a study's finished runs")
    infl.add_argument("study", type=Path)
    infl.add_argument("--kind", default="p_true", help="output kind: p_true, correct, raw_margin, softmax_margin")
    infl.add_argument("--top", type=int, default=10, help="classes to print at each end of the ranking")
    infl.add_argument("--out", type=Path, help="directory for CSV/NPY files (default: STUDY/influence)")

    report = sub.add_parser("report", help="write plots, tables and report.html for a study")
    report.add_argument("study", type=Path)
    report.add_argument("--kind", default="p_true")

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
    return config.with_overrides(**changes) if changes else config


def _cmd_run(args: argparse.Namespace) -> int:
    from .study import run_study

    config = _apply_overrides(load_config(args.config), args)
    out = args.out or Path("studies") / config.name
    report = run_study(config, out, progress=not args.quiet)
    t = report.timings
    print(
        f"{out}: {report.planned} runs planned, {report.skipped} already finished, {len(report.executed)} run now "
        f"in {t['runs_wall_seconds']:.0f} s"
    )
    return 0


def _cmd_influence(args: argparse.Namespace) -> int:
    import numpy as np

    from .analysis import example_influence, overall_influence, per_target_class_influence, ranked
    from .report import write_overall_csv, write_per_target_csv
    from .results import open_study

    results = open_study(args.study)
    if results.num_models < 3:
        raise ValueError(f"{args.study} has {results.num_models} finished models; influences need at least 3")
    out = args.out or args.study / "influence"
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    overall = overall_influence(results, args.kind)
    per_class = per_target_class_influence(results, args.kind)
    examples = example_influence(results, args.kind)
    seconds = time.perf_counter() - started
    write_overall_csv(overall, out / f"overall_{args.kind}.csv")
    write_per_target_csv(per_class, out / f"per_target_class_{args.kind}.csv")
    np.save(out / f"example_values_{args.kind}.npy", examples.values)
    np.save(out / f"example_stderr_{args.kind}.npy", examples.stderr)
    order = ranked(overall)
    print(f"{results.num_models} models, {len(results.class_names)} classes, {len(results.target_ids)} targets, "
          f"output {args.kind}; estimated in {seconds:.2f} s")
    print(f"most positive overall influence:")
    for row in order[: args.top]:
        print(f"  {row.name:>14}  {row.influence:+.5f} ± {1.96 * row.stderr:.5f}")
    print(f"most negative overall influence:")
    for row in order[-args.top :][::-1]:
        print(f"  {row.name:>14}  {row.influence:+.5f} ± {1.96 * row.stderr:.5f}")
    print(f"tables in {out}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from .report import build_report

    report = build_report(args.study, kind=args.kind)
    print(f"report: {report.html_path}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .report import build_report
    from .study import run_study

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
    print(
        f"time: data {t['data_seconds']:.1f} s, runs {t['runs_wall_seconds']:.1f} s "
        f"(train {t['train_seconds_total']:.0f} s + transfer {t['transfer_seconds_total']:.0f} s of worker time), "
        f"report {report_seconds:.1f} s, total {total:.1f} s"
    )
    print(f"report: {report.html_path}")
    return 0


COMMANDS = {"run": _cmd_run, "influence": _cmd_influence, "report": _cmd_report, "demo": _cmd_demo}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from .executors import RunFailedError
    from .store import StudyMismatchError
    from .study import StudyBusyError

    try:
        return COMMANDS[args.command](args)
    except (ConfigError, StudyMismatchError, StudyBusyError, FileNotFoundError, RunFailedError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted: finished runs are kept; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
