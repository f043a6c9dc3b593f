"""Claim: what each executor adds per run, on tiny runs, as a ratio to the serial executor.

Runs the same tiny study (8 rendered glyph classes → scikit-learn digits, a run takes well under a
tenth of a second) with each executor, side by side in one run, each with one run at a time
(serial, a pool of one process, a local Ray with one CPU, SLURM's array through submitit's
in-process DebugExecutor), at two sizes (``--models`` and ``--extra`` more), interleaved over
``--rounds`` rounds, keeping each executor's fastest time per size. The time is the study's
``runs_wall_seconds``: from choosing the executor to the last run file written, so it includes
starting the pool or the local Ray and shutting it down; data views and consolidation are excluded.

From the two sizes: **per run** = the time the extra runs took ÷ their number (the marginal cost of
a run, start-up cancelled out), compared with the serial executor's as a ratio; **fixed** = the
rest (starting workers, importing torch in them, starting and stopping Ray). ``ray (warm)`` runs on
a Ray already running. ``slurm (debug)`` is each array task's own work — rebuilding its run from the
stored study and loading the study's data, as ``work --index`` does — where a real cluster adds a
process start, a Python and torch import (the fixed cost of ``process``) and the scheduler's
latency to every task.

    python bench/executor_overhead.py [--models 16] [--extra 160] [--rounds 2]
"""

from __future__ import annotations

import argparse
import io
import os
from pathlib import Path
from tempfile import TemporaryDirectory

from _setup import ensure_malloc_tuning
from transfer_influence.pipeline.run import run_study
from transfer_influence.study.config import StudyConfig, parse_config

TINY_GLYPHS = ["A", "B", "C", "D", "E", "F", "0", "1"]


def tiny_config(models: int, executor: str) -> StudyConfig:
    return parse_config({
        "name": "overhead",
        "seed": 24,
        "num_models": models,
        "source": {
            "components": [
                {"dataset": "glyphs", "options": {"classes": TINY_GLYPHS, "images_per_class": 24, "max_fonts": 12}}
            ],
            "holdout_per_class": 4,
        },
        "target": {"dataset": {"dataset": "digits"}, "shots_per_class": 5, "test_size": 150},
        "model": {"channels": [8, 8, 8], "feature_dim": 32},
        "train": {"epochs": 1, "batch_size": 64},
        "baselines": {"repeats": 0},
        "execution": {"executor": executor, "workers": 1, "slurm": {"cluster": "debug"}},
    })


def study_seconds(config: StudyConfig, study: Path) -> float:
    """Wall time of the study's runs (executor start-up and shutdown included)."""
    report = run_study(config, study, progress=False, stream=io.StringIO())
    assert len(report.executed) == config.num_models, "every run must execute in a fresh study"
    return report.timings["runs_wall_seconds"]


def warm_ray_seconds(config: StudyConfig, root: Path) -> float:
    """A study on a Ray that is already running and has run a study (its workers started)."""
    import ray

    from transfer_influence.execute.ray_executor import ray_session

    with ray_session(ray, config.execution.ray, 1, root):
        study_seconds(tiny_config(2, "ray"), root / "warmup")
        return study_seconds(config, root / "warm")


LABELS = {"serial": "serial", "process": "process (1)", "ray": "ray (local)", "ray-warm": "ray (warm)",
          "slurm": "slurm (debug)"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=16, help="runs of the smaller study")
    parser.add_argument("--extra", type=int, default=160, help="further runs of the larger study")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds; each executor's fastest is kept")
    args = parser.parse_args()
    sizes = (args.models, args.models + args.extra)
    best: dict[tuple[str, int], float] = {}
    with TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ.setdefault("TRANSFER_INFLUENCE_CACHE", str(root / "cache"))
        study_seconds(tiny_config(2, "serial"), root / "warmup")  # renders and caches the glyphs once
        for round_number in range(args.rounds):
            for size in sizes:
                for name in LABELS:
                    where = root / f"{name}-{size}-{round_number}"
                    if name == "ray-warm":
                        seconds = warm_ray_seconds(tiny_config(size, "ray"), where)
                    else:
                        seconds = study_seconds(tiny_config(size, name), where)
                    best[name, size] = min(best.get((name, size), seconds), seconds)
    small, large = sizes
    per_run = {name: (best[name, large] - best[name, small]) / (large - small) for name in LABELS}
    fixed = {name: best[name, small] - small * per_run[name] for name in LABELS}
    print(f"tiny runs, one at a time; studies of {small} and {large} runs, fastest of {args.rounds} interleaved rounds")
    print(f"{'executor':<15} {'per run s':>10} {'vs serial':>10} {'fixed s':>8} {f'{small} runs s':>10} {f'{large} runs s':>10}")
    for name, label in LABELS.items():
        print(f"{label:<15} {per_run[name]:10.3f} {per_run[name] / per_run['serial']:9.2f}x {fixed[name]:8.2f} "
              f"{best[name, small]:10.2f} {best[name, large]:10.2f}")


if __name__ == "__main__":
    ensure_malloc_tuning()
    main()
