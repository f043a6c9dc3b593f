"""Claim: the default design reaches the paper combination's quality with far less compute.

Two parts, each measured side by side in one run:

1. Simulator (exact, seconds): known ground truth, effect and noise sizes of the demo. For each
   design × estimator at α = 0.5 and α = 0.1, the number of models whose class × target-class
   influences reach the split-half Spearman (and the Spearman with the truth) that the paper's
   combination (iid subsets, difference of means) reaches with --sim-models models.
2. Demo (real training on 2 cores): each configuration trains for about the same wall time; the
   models (and minutes) each needs to reach the split-half Spearman that the paper's combination
   (α = 0.5, iid, independent seeds, difference of means, head L2 0.01) reaches in that time come
   from the Spearman–Brown curve fitted to its measured split-half points, as ratios against the
   paper's. Held-out Spearman at equal compute is printed beside it.

    python bench/variance_reduction.py [--budget 150] [--sim-models 1000] [--skip-demo]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np

from _setup import ensure_malloc_tuning
from transfer_influence.estimate import estimate, group_means
from transfer_influence.study.config import load_config, packaged_config
from transfer_influence.analysis.convergence import study_held_out, study_split_half
from transfer_influence.evaluate.reliability import split_half_reliability
from transfer_influence.study.design import DESIGNS
from transfer_influence.study.results import open_study
from transfer_influence.evaluate.simulate import SimulatorSpec, StudySimulator
from transfer_influence.pipeline.run import run_study


def _truth_spearman(sim: StudySimulator, masks: np.ndarray, y: np.ndarray, estimator: str, alpha: float) -> float:
    from scipy.stats import spearmanr

    est = estimate(estimator, masks, group_means(y, sim.target_labels, sim.spec.num_target_classes)).values
    return float(spearmanr(est.ravel(), sim.true_influence(alpha, "target_class").ravel()).statistic)


def simulator_part(models: int) -> None:
    sim = StudySimulator(SimulatorSpec())
    k = sim.spec.num_classes
    print(f"\n== simulator: K={k}, {sim.spec.num_target_classes} target classes, reference = iid + dim with {models} models")
    print(f"{'alpha':>5} {'design':>10} {'estimator':>9} {'split-half':>10} {'vs truth':>9} {'models for ref':>15} {'ratio':>6}")
    for alpha in (0.5, 0.1):
        rows = []
        for design in ("iid", "partition"):
            masks = np.array([DESIGNS[design](0, i, k, alpha) for i in range(4 * models)])
            y = sim.outputs(masks, seed=1)
            for est in ("dim", "ridge"):
                curve = split_half_reliability(masks, y, sim.target_labels, sim.spec.num_target_classes, est, levels=("target_class",), repeats=3)["target_class"]
                truth = _truth_spearman(sim, masks[:models], y[:models], est, alpha)
                rows.append((design, est, curve, truth))
        ref_curve = rows[0][2]
        ref = ref_curve.predicted(models / 2)
        for design, est, curve, truth in rows:
            need = curve.models_for(ref)
            print(f"{alpha:>5} {design:>10} {est:>9} {curve.predicted(models / 2):>10.3f} {truth:>9.3f} {need:>15.0f} {need / models:>6.2f}")


DEMO_CONFIGS = {
    "paper: a=0.5 iid indep l2=0.01": {},
    "a=0.5 partition block l2=0.3": {"design.kind": "partition", "train.seeding": "block", "transfer.head_l2": 0.3},
    "a=0.1 iid indep l2=0.01": {"design.alpha": 0.1},
    "a=0.1 partition block l2=0.3 (default)": {
        "design.alpha": 0.1, "design.kind": "partition", "train.seeding": "block", "transfer.head_l2": 0.3},
    "a=0.1 partition common l2=0.3": {
        "design.alpha": 0.1, "design.kind": "partition", "train.seeding": "common", "transfer.head_l2": 0.3},
}
MODELS_PER_SECOND_GUESS = {0.5: 1.05, 0.1: 2.9}


def demo_part(budget: float, workdir: Path) -> None:
    base = load_config(packaged_config("demo")).with_overrides(
        **{"design.alpha": 0.5, "design.kind": "iid", "transfer.head_l2": 0.01, "train.seeding": "independent",
           "target.head_splits": 1, "baselines.repeats": 0, "execution.stop_reliability": None,
           "num_models": 100}
    )
    measured = []
    for label, changes in DEMO_CONFIGS.items():
        config = base.with_overrides(**changes)
        models = int(budget * MODELS_PER_SECOND_GUESS[config.design.alpha]) // 10 * 10
        config = config.with_overrides(num_models=models)
        started = time.perf_counter()
        directory = workdir / f"config-{len(measured)}"
        run_study(config, directory, progress=False)
        seconds = time.perf_counter() - started
        results = open_study(directory)
        y = np.asarray(results.outputs("p_true"))
        for est in ("dim", "ridge"):
            curve = study_split_half(results, y, est, levels=("target_class",), repeats=4)["target_class"]
            held = study_held_out(results, y, est)["target_class"]
            measured.append((label, est, models, seconds, curve, held))
        print(f"  trained {label}: {models} models in {seconds:.0f} s", flush=True)
    ref_label, _, ref_models, ref_seconds, ref_curve, _ = measured[0]
    ref = ref_curve.predicted(ref_models / 2)
    print(f"\n== demo: reference = {ref_label} + dim: split-half (class × target class) {ref:.3f} with {ref_models} models in {ref_seconds:.0f} s")
    print(f"{'configuration':>38} {'est':>5} {'models':>6} {'s':>5} {'split-half':>10} {'held-out':>8} {'models for ref':>14} {'min for ref':>11} {'compute ratio':>13}")
    for label, est, models, seconds, curve, held in measured:
        need = curve.models_for(ref)
        minutes = need * seconds / models / 60
        print(f"{label:>38} {est:>5} {models:>6} {seconds:>5.0f} {curve.at_full_size:>10.3f} {held:>8.3f} {need:>14.0f} {minutes:>11.1f} {minutes / (ref_seconds / 60):>13.2f}")


def main() -> None:
    ensure_malloc_tuning()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=150.0, help="seconds of training per demo configuration")
    parser.add_argument("--sim-models", type=int, default=1000)
    parser.add_argument("--skip-demo", action="store_true")
    args = parser.parse_args()
    simulator_part(args.sim_models)
    if not args.skip_demo:
        with TemporaryDirectory() as tmp:
            demo_part(args.budget, Path(tmp))


if __name__ == "__main__":
    main()
