"""Design selection: short pilot studies, then a projection of what each α reaches in a budget.

A pilot per candidate α trains for a fixed wall time, measures models/minute and the split-half
reliability curve, and the fitted Spearman–Brown curve projects the reliability within the user's
budget and the minutes a target reliability needs. α is not only a speed knob: it defines what is
measured (a class's effect within a source of α·K classes), so the table says that for every α.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np

from ..analysis.convergence import MIN_MODELS, study_held_out, study_split_half
from ..errors import PlanError
from ..evaluate.reliability import LEVEL_NAMES, ReliabilityCurve
from ..study.config import StudyConfig
from ..study.design import partition_block_size
from ..study.results import open_study
from .run import TIMINGS_FILE, run_study


@dataclass(frozen=True)
class Pilot:
    alpha: float
    design: str
    models: int
    seconds: float
    mean_target_accuracy: float
    curves: dict[str, ReliabilityCurve]
    held_out: dict[str, float]

    @property
    def models_per_minute(self) -> float:
        return self.models / self.seconds * 60

    def reliability_within(self, minutes: float, estimator: str) -> float:
        return self.curves[estimator].predicted(self.models_per_minute * minutes / 2)

    def minutes_for(self, reliability: float, estimator: str) -> float:
        return self.curves[estimator].models_for(reliability) / self.models_per_minute


@dataclass
class Recommendation:
    target: float
    budget_minutes: float
    level: str
    num_classes: int
    pilots: list[Pilot] = field(default_factory=list)

    def best(self) -> tuple[Pilot, str]:
        """The pilot and estimator with the highest projected reliability within the budget, among
        those whose curve was measured (a pilot too short for any split half projects nothing)."""
        options = [(p, est) for p in self.pilots for est, curve in p.curves.items() if curve.models_per_half.size]
        if not options:
            raise PlanError(
                "no pilot trained enough models for a split-half reliability point (each half must hold every class "
                "in and out of some subset); give the pilots more time (--pilot-seconds) or try a larger alpha"
            )
        return max(options, key=lambda o: o[0].reliability_within(self.budget_minutes, o[1]))

    def config_changes(self) -> dict[str, object]:
        pilot, estimator = self.best()
        models = int(pilot.models_per_minute * self.budget_minutes)
        needed = pilot.curves[estimator].models_for(self.target)
        if np.isfinite(needed) and needed < models:
            models = int(np.ceil(needed / 10) * 10)
        return {"design.alpha": pilot.alpha, "design.kind": pilot.design, "num_models": models, "estimator": estimator}

    def write(self, stream: IO[str]) -> None:
        print(
            f"\nprojected split-half Spearman ({LEVEL_NAMES[self.level]}) within {self.budget_minutes:g} min, "
            f"and minutes to reach {self.target:g}:",
            file=stream,
        )
        print(f"{'alpha':>6} {'classes/model':>13} {'design':>10} {'models/min':>10} {'estimator':>9} "
              f"{'pilot r':>8} {'in budget':>9} {'min for target':>14}", file=stream)
        for p in self.pilots:
            for est, curve in p.curves.items():
                if not curve.models_per_half.size:
                    print(f"{p.alpha:>6g} {round(p.alpha * self.num_classes):>13d} {p.design:>10} {p.models_per_minute:>10.0f} "
                          f"{est:>9}  no split half measurable in the pilot's {p.models} models", file=stream)
                    continue
                print(
                    f"{p.alpha:>6g} {round(p.alpha * self.num_classes):>13d} {p.design:>10} {p.models_per_minute:>10.0f} "
                    f"{est:>9} {curve.at_full_size:>8.3f} {p.reliability_within(self.budget_minutes, est):>9.3f} "
                    f"{p.minutes_for(self.target, est):>14.1f}",
                    file=stream,
                )
        pilot, est = self.best()
        changes = self.config_changes()
        print(
            f"\nrecommended: alpha {pilot.alpha:g} ({changes['design.kind']} design), {changes['num_models']} models, "
            f"estimator {est} (`transfer-influence influence --estimator {est}`)",
            file=stream,
        )
        print(
            f"what it measures: each model trains on {round(pilot.alpha * self.num_classes)} of {self.num_classes} "
            "source classes, so an influence is a class's effect within a source of that size (smaller α: what a "
            "class adds to a small source; α = 0.5: the paper's half-size sources).",
            file=stream,
        )
        print("config:\n  design: {kind: %s, alpha: %g}\n  num_models: %d" % (changes["design.kind"], pilot.alpha, changes["num_models"]), file=stream)


def design_for(alpha: float) -> str:
    """The balanced partition design where 1/α is whole, else independent subsets."""
    try:
        partition_block_size(alpha)
    except ValueError:
        return "iid"
    return "partition"


def run_pilots(
    config: StudyConfig,
    out: Path,
    alphas: tuple[float, ...],
    pilot_seconds: float,
    target: float,
    budget_minutes: float,
    level: str = "target_class",
    stream: IO[str] | None = None,
) -> Recommendation:
    pilots: list[Pilot] = []
    num_classes = 0
    for alpha in alphas:
        design = design_for(alpha)
        pilot_config = config.with_overrides(**{
            "design.alpha": alpha,
            "design.kind": design,
            "num_models": 100_000,
            "baselines.repeats": 0,
            "execution.stop_after_seconds": pilot_seconds,
            "execution.stop_reliability": None,
        })
        directory = out / f"pilot-alpha-{alpha:g}"
        if stream is not None:
            print(f"pilot: alpha {alpha:g}, {design} design, {pilot_seconds:g} s → {directory}", file=stream, flush=True)
        run_study(pilot_config, directory, progress=False, stream=stream)
        results = open_study(directory)
        num_classes = len(results.class_names)
        if results.num_models < MIN_MODELS:  # too short to measure: said, and left out of the choice
            if stream is not None:
                print(f"  pilot alpha {alpha:g} trained {results.num_models} models in {pilot_seconds:g} s, fewer than "
                      f"the {MIN_MODELS} a reliability curve needs: left out (raise --pilot-seconds)", file=stream)
            continue
        y = np.asarray(results.outputs(config.analysis.output_kind))
        curves, held = {}, {}
        for est in ("dim", "ridge"):
            curves[est] = study_split_half(results, y, est, levels=(level,), repeats=4)[level]
            held[est] = study_held_out(results, y, est)[level]
        models, seconds = training_throughput(directory)
        pilots.append(Pilot(alpha, design, models, seconds, float(results.target_accuracy.mean()), curves, held))
    return Recommendation(target, budget_minutes, level, num_classes, pilots)


def training_throughput(study_dir: Path) -> tuple[int, float]:
    """(runs trained, wall seconds spent training them) over every ``run`` of a study directory.

    A pilot that is extended by a second ``plan`` holds the models of both invocations, so its rate
    must come from both invocations' runs and times (``timings.json``), not this one's time alone.
    """
    history = json.loads((study_dir / TIMINGS_FILE).read_text())
    runs = sum(int(entry["runs_executed"]) for entry in history)
    seconds = sum(float(entry["runs_wall_seconds"]) for entry in history)
    if runs == 0 or seconds <= 0:
        raise PlanError(f"{study_dir} trained no models in its pilot; give the pilot more time (--pilot-seconds)")
    return runs, seconds
