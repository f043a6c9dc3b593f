"""Claim: a second target costs little beside a one-target study, because each source model is
trained once and only transferred again (goal: at most 1.4× the one-target study's time).

Runs the packaged demo's study (glyphs + clothing → MNIST digits, α = 0.1, the demo's model,
training and head) at ``--models`` models, once as it is and once with Fashion-MNIST's test split as
a second target (``extra_targets: [{name: fashion, ...}]``, the same shots and test size), side by
side on this machine: the two are interleaved over ``--rounds`` rounds, each in a fresh study
directory, with the serial executor and one thread (one core, so other work on the machine disturbs
both alike), keeping each one's fastest time. The time is the study's ``runs_wall_seconds`` (the
runs, from the executor's start to the last run file written; building the data views is excluded,
and is paid once per study either way). Printed: both times, their ratio, and the worker's own
split into training and transfer seconds.

    python bench/second_target.py [--models 40] [--rounds 3]
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from _setup import ensure_malloc_tuning
from transfer_influence.pipeline.run import run_study
from transfer_influence.study.config import StudyConfig, load_config, packaged_config

SECOND_TARGET: dict[str, Any] = {
    "name": "fashion",
    "dataset": {"dataset": "fashion_mnist", "options": {"split": "test"}},
    "shots_per_class": 10,
    "test_size": 2000,
    "split_seed": 0,
}


def demo_config(models: int, two_targets: bool) -> StudyConfig:
    config = load_config(packaged_config("demo"))
    data = config.model_dump(mode="json")
    data["num_models"] = models
    data["baselines"]["repeats"] = 0
    data["execution"].update(executor="serial", workers=1, threads_per_worker=1)
    if two_targets:
        data["extra_targets"] = [SECOND_TARGET]
    return StudyConfig.model_validate(data)


def run_once(config: StudyConfig, study: Path) -> dict[str, float]:
    report = run_study(config, study, progress=False, stream=io.StringIO())
    assert len(report.executed) == config.num_models, "every run must execute in a fresh study"
    return {key: float(report.timings[key]) for key in ("runs_wall_seconds", "train_seconds_total", "transfer_seconds_total")}


def main() -> None:
    ensure_malloc_tuning()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    configs = {"one target": demo_config(args.models, False), "two targets": demo_config(args.models, True)}
    best: dict[str, dict[str, float]] = {}
    with TemporaryDirectory() as scratch:
        for round_index in range(args.rounds):
            for label, config in configs.items():
                timings = run_once(config, Path(scratch) / f"{label.replace(' ', '-')}-{round_index}")
                print(f"round {round_index + 1}, {label}: {timings['runs_wall_seconds']:.1f} s", flush=True)
                if label not in best or timings["runs_wall_seconds"] < best[label]["runs_wall_seconds"]:
                    best[label] = timings
    print(f"\ndemo study, {args.models} models, serial executor, 1 thread; fastest of {args.rounds} interleaved rounds")
    print(f"{'':>12} {'runs wall s':>11} {'train s':>8} {'transfer s':>10} {'s/model':>8}")
    for label, t in best.items():
        print(f"{label:>12} {t['runs_wall_seconds']:>11.1f} {t['train_seconds_total']:>8.1f} "
              f"{t['transfer_seconds_total']:>10.1f} {t['runs_wall_seconds'] / args.models:>8.3f}")
    ratio = best["two targets"]["runs_wall_seconds"] / best["one target"]["runs_wall_seconds"]
    print(f"cost of the second target: {ratio:.2f}× the one-target study (goal ≤ 1.4×)")


if __name__ == "__main__":
    main()
