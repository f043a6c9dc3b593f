"""Commands that create and run studies: ``run``, ``work``, ``status``, ``plan``, ``demo``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InputError
from ..study.config import load_config, packaged_config
from .common import apply_executor_options, apply_overrides
from .reading import run_leaks

if TYPE_CHECKING:
    from ..analysis.context import StudyContext
    from ..report.build import Report


def cmd_run(args: argparse.Namespace) -> int:
    from ..pipeline.run import run_study

    config = apply_executor_options(apply_overrides(load_config(args.config), args), args)
    out = args.out or Path("studies") / config.name
    report = run_study(config, out, progress=not args.quiet)
    t = report.timings
    print(
        f"{out}: {report.planned} runs planned, {report.skipped} already finished, {len(report.executed)} run now "
        f"in {t['runs_wall_seconds']:.0f} s"
    )
    return 0


def cmd_work(args: argparse.Namespace) -> int:
    from ..execute.single import run_single

    outcome = run_single(args.study, args.kind, args.index, stream=sys.stderr)
    if outcome.summary is None:
        print(f"{outcome.run_id} is already done ({outcome.path}); nothing to run")
    else:
        print(
            f"{outcome.run_id} done in {sum(outcome.summary.seconds.values()):.1f} s "
            f"(target accuracy {outcome.summary.target_accuracy:.3f}): {outcome.path}"
        )
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from ..pipeline.status import format_status, study_status

    print(format_status(study_status(args.study), max_listed=args.list))
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from ..pipeline.pilots import run_pilots

    config = load_config(args.config)
    if config.design.unit != "class":
        raise InputError(
            f"{args.config}: `plan` pilots class-level designs; this config draws subsets of source examples "
            "(design.unit: example). Run the study with `transfer-influence run` and read it with `influence`"
        )
    out = args.out or Path("studies") / f"{config.name}-pilots"
    recommendation = run_pilots(  # --alphas, --pilot-seconds, --reliability and --budget-minutes checked by their types
        config, out, args.alphas, args.pilot_seconds, args.reliability, args.budget_minutes, args.level, stream=sys.stdout
    )
    recommendation.write(sys.stdout)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from ..analysis.context import StudyContext
    from ..analysis.leaks import LEAK_ESTIMATORS
    from ..pipeline.run import run_study
    from ..report.build import build_report

    if args.config and args.variant:
        raise InputError("demo: give either --config or --variant, not both")
    packaged = packaged_config({"harm": "demo_harm", "leaks": "leaks"}.get(args.variant or "", "demo"))
    config = apply_overrides(load_config(args.config or packaged), args)
    started = time.perf_counter()
    run = run_study(config, args.out, progress=not args.quiet)
    if config.design.unit == "example":  # no class report: pair leaks instead (and score planted ones)
        print(f"\nstudy: {args.out}; runs {run.timings['runs_wall_seconds']:.0f} s")
        _example_demo(StudyContext.open(args.out, estimator="ridge", estimators=LEAK_ESTIMATORS, units="example",
                                        command="leaks"), planted=config.source.plant is not None)
        return 0
    report_started = time.perf_counter()
    context = StudyContext.open(args.out)
    report = build_report(context)
    _print_class_demo(context, report, run.timings, time.perf_counter() - report_started, time.perf_counter() - started)
    return 0


def _example_demo(context: "StudyContext", planted: bool) -> None:
    """The leak pairs by ridge (and, with planted faults, their detection curve by dim and ridge),
    then the example report drawn from the same fit."""
    from ..report.leak_report import build_leak_report

    findings = run_leaks(context, curve=planted, curve_estimators=("dim", "ridge") if planted else None)
    print(f"report: {build_leak_report(context, findings=findings)}")


def _print_class_demo(context: "StudyContext", report: "Report", t: dict[str, float], report_seconds: float,
                      total: float) -> None:
    """The demo's summary: findings, baselines, look-alikes, reliability and where the time went."""
    from ..evaluate.reliability import LEVEL_NAMES

    config = context.config
    print(f"\nstudy: {context.path} ({report.overall.num_models} models)")
    if report.findings is not None:
        print("findings:\n" + "\n".join(report.findings.lines()))
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
            + ", ".join(f"{LEVEL_NAMES[level]} " + (f"{curve.at_full_size:.2f}" if curve.models_per_half.size else "not measured")
                        for level, curve in curves.items())
        )
        for note in report.diagnostics.notes:
            print(f"  note: {note}")
    print(
        f"time: data {t['data_seconds']:.1f} s, runs {t['runs_wall_seconds']:.1f} s "
        f"(train {t['train_seconds_total']:.0f} s + transfer {t['transfer_seconds_total']:.0f} s of worker time), "
        f"report {report_seconds:.1f} s, total {total:.1f} s"
    )
    print(f"report: {report.html_path}")
