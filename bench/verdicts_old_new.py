"""Claim: the verdict fixes (issue 14) hold their stated levels where the old rules did not — old and new side by side on simulations with known truth.

Each section simulates what its test simulates (named in its header), measures the NEW behaviour
with the package's public functions and the OLD behaviour with a few lines re-implemented here
(each labelled ``old_…``), on the same simulated draws:

1. Counterfactual recommendation (tests/test_recommendation.py): nine removals that change nothing
   (seed luck shared by every arm and the full source); how often a removal is recommended by the
   old rule (the largest paired gain among the arms beating the full source by 2 SE on the same R
   seeds) and by ``evaluate.selection`` (choose on the selection seeds, confirm on R fresh seeds,
   one-sided t(R − 1) at 5%; R ≥ 3), and the power for one arm with a real gain of 5 paired SE.
2. Bootstrap error (tests/test_bootstrap_blocks.py): bootstrap sd of the overall influences over
   the true sampling sd across simulated studies, resampling single models (old) or whole design
   blocks (new, ``evaluate.bootstrap.bootstrap_std(blocks=)``).
3. What-if intervals (tests/test_whatif_intervals.py): coverage of the 95% interval with 1, 2, 3
   and 5 all-source baseline runs: the ridge's degrees of freedom and a single run's baseline
   variance taken as 0 (old) vs Welch–Satterthwaite and no interval from one run (new).
4. "Significantly negative" lists (tests/test_fdr_sided.py): true negatives found and false-discovery
   proportion at q = 0.1 for one two-sided BH list filtered by sign (old) vs the one-sided BH list.
5. LASSO held-out R² (tests/test_lasso.py): reported on the held-out models that chose λ (old) vs
   on the half that did not (new), each against its own fit's R² on fresh models (the truth).
6. LDS (the new diagnostic, ``evaluate.lds``) of ridge and of the difference of means on a
   simulated partition study at a few model counts, beside the true datamodel's LDS.

Seeded and deterministic; numpy/scipy only, BLAS held to one thread. ``--scale`` multiplies every
section's trial count (1 ≈ a minute on one core; the counts are printed).

    python bench/verdicts_old_new.py [--scale 1.0] [--sections 1,2,3,4,5,6]
"""

from __future__ import annotations

import argparse
import time
from typing import Callable, Iterator

import numpy as np
from scipy import stats
from threadpoolctl import threadpool_limits

from transfer_influence import lasso_datamodel, lasso_path
from transfer_influence.analysis.whatif import interpolation_weight, predict_removal
from transfer_influence.estimate import class_influence
from transfer_influence.estimate.lasso import DATAMODEL_TOL
from transfer_influence.estimate.result import InfluenceEstimate
from transfer_influence.evaluate.bootstrap import bootstrap_std
from transfer_influence.evaluate.fdr import significant_classes
from transfer_influence.evaluate.lds import fit_and_score, linear_datamodeling_score
from transfer_influence.evaluate.selection import MIN_SEEDS, choose_arm, confirmed
from transfer_influence.evaluate.simulate import SimulatorSpec, StudySimulator
from transfer_influence.study.design import (
    complement_mask, iid_mask, partition_block_size, partition_mask, partition_subset_size,
)


def _rate(hits: np.ndarray | list[bool]) -> str:
    """A share as a percentage with its binomial standard error (the simulation's own noise)."""
    p, n = float(np.mean(hits)), np.size(hits)
    return f"{100 * p:5.1f}% ± {100 * np.sqrt(p * (1 - p) / n):.1f}"


def _mean_se(values: np.ndarray | list[float], digits: int = 2) -> str:
    v = np.asarray(values, dtype=np.float64)
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1) / np.sqrt(v.size):.{digits}f}"


# ---------------------------------------------------------------------------------------------
# 1. Counterfactual recommendation (the winner's curse)

NULL_ARMS, SEED_LUCK, ARM_NOISE, CHUNK = 9, 1.0, 0.5, 10_000


def _sweep_gains(rng: np.random.Generator, trials: int, repeats: int, effects: np.ndarray) -> np.ndarray:
    """Paired gains arm − full source, (trials, arms, repeats): a seed's luck is shared by the full
    source and every arm, so the arms' gains are correlated through the full source's runs."""
    luck = rng.normal(0, SEED_LUCK, (trials, 1, repeats))
    full = luck + rng.normal(0, ARM_NOISE, (trials, 1, repeats))
    arms = luck + rng.normal(0, ARM_NOISE, (trials, effects.size, repeats)) + effects[None, :, None]
    return arms - full


def old_recommendation(gains: np.ndarray) -> np.ndarray:
    """OLD (analysis/counterfactual.py before issue 14): among the arms whose paired gain on the
    sweep's own seeds exceeds 2 of its standard errors, the one with the largest gain; −1 if none."""
    mean = gains.mean(axis=-1)
    se = gains.std(axis=-1, ddof=1) / np.sqrt(gains.shape[-1])
    winners = np.where(mean > 2 * se, mean, -np.inf)
    return np.where(np.isfinite(winners).any(axis=-1), winners.argmax(axis=-1), -1)


def new_recommendation(selection: np.ndarray, fresh: np.ndarray) -> np.ndarray:
    """NEW: the arm ``choose_arm`` picks on the selection seeds if ``confirmed`` on fresh seeds; −1 if not."""
    chosen = choose_arm(selection)
    picked = np.take_along_axis(fresh, np.maximum(chosen, 0)[:, None, None], axis=1)[:, 0]
    return np.where((chosen >= 0) & confirmed(picked), chosen, -1)


def _recommendations(trials: int, repeats: int, effects: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(old, new) recommended arm per simulated sweep, in chunks; new is None below MIN_SEEDS seeds,
    which the new rule refuses."""
    rng = np.random.default_rng([14, seed, repeats])
    old, new = [], []
    for start in range(0, trials, CHUNK):
        size = min(CHUNK, trials - start)
        selection, fresh = _sweep_gains(rng, size, repeats, effects), _sweep_gains(rng, size, repeats, effects)
        old.append(old_recommendation(selection))
        new.append(new_recommendation(selection, fresh))
    return np.concatenate(old), (np.concatenate(new) if repeats >= MIN_SEEDS else None)


def recommendation(trials: int) -> None:
    power_trials = max(1_000, trials // 5)
    print(f"1. counterfactual recommendation: {NULL_ARMS} null arms, {trials:,} sweeps per R (power: "
          f"{power_trials:,}); old = best of the arms clearing 2 SE on the same seeds, new = choose, then "
          "confirm on R fresh seeds (one-sided t(R-1), 5%)")
    print(f"   {'R':>3} | {'null: a removal recommended':^35} | {'real gain of 5 SE: right arm recommended (wrong arm)':^58}")
    print(f"   {'':>3} | {'old':>16} {'new':>18} | {'old':>28} {'new':>28}")
    for repeats in (2, MIN_SEEDS, 10):
        old, new = _recommendations(trials, repeats, np.zeros(NULL_ARMS), seed=0)
        effects = np.zeros(NULL_ARMS + 1)
        effects[4] = 5 * np.sqrt(2) * ARM_NOISE / np.sqrt(repeats)  # 5 paired SEs at R seeds
        old_p, new_p = _recommendations(power_trials, repeats, effects, seed=1)
        refused = f"refused (R < {MIN_SEEDS})"
        cells = [_rate(old >= 0), refused if new is None else _rate(new >= 0),
                 f"{_rate(old_p == 4)} ({_rate((old_p >= 0) & (old_p != 4)).strip()})",
                 refused if new_p is None else f"{_rate(new_p == 4)} ({_rate((new_p >= 0) & (new_p != 4)).strip()})"]
        print(f"   {repeats:>3} | {cells[0]:>16} {cells[1]:>18} | {cells[2]:>28} {cells[3]:>28}")


# ---------------------------------------------------------------------------------------------
# 2. Bootstrap over whole design blocks

BOOT_K, BOOT_MODELS = 30, 200
MaskFn = Callable[[int, int, int, float], np.ndarray]
BOOT_DESIGNS: dict[str, tuple[MaskFn, float, int, float]] = {
    "partition a=0.1, seed per block": (partition_mask, 0.1, 10, 0.05),
    "complement pairs, seed per pair": (complement_mask, 0.5, 2, 0.05),
    "complement pairs, own seeds": (complement_mask, 0.5, 2, 0.0),
}
"""design → (mask function, α, block size, sd of the shift shared by a block's models)."""


def _ratio_with_se(boot: np.ndarray, estimates: np.ndarray, rng: np.random.Generator) -> str:
    """Mean bootstrap sd over the true sd (mean over classes of the sd across studies), with a
    delta-method error from both: the bootstrapped studies' spread and a bootstrap over studies."""
    truth = float(estimates.std(axis=0, ddof=1).mean())
    redrawn = [estimates[rng.integers(0, len(estimates), len(estimates))].std(axis=0, ddof=1).mean() for _ in range(200)]
    ratio = float(boot.mean()) / truth
    rel = np.hypot(boot.std(ddof=1) / np.sqrt(boot.size) / boot.mean(), np.std(redrawn) / truth)
    return f"{ratio:.2f} ± {ratio * rel:.2f}"


def _bootstrap_design(design: str, studies: int, bootstrapped: int) -> tuple[str, str]:
    """(old, new) bootstrap sd / true sd of the overall influences at all models, one design."""
    mask_fn, alpha, block_size, shared = BOOT_DESIGNS[design]
    sim = StudySimulator(SimulatorSpec(num_classes=BOOT_K, examples_per_class=2, block_noise=shared, seed=3))
    blocks = np.arange(BOOT_MODELS) // block_size
    estimates, old, new = [], [], []
    for study in range(studies):
        masks = np.array([mask_fn(study, i, BOOT_K, alpha) for i in range(BOOT_MODELS)])
        outputs = sim.outputs(masks, 1000 + study, blocks)
        estimates.append(class_influence(masks, outputs.mean(axis=1, keepdims=True)).values[:, 0])
        if study < bootstrapped:
            old.append(bootstrap_std(masks, outputs, points=2, seed=study).mean_std[-1])  # OLD: single models
            new.append(bootstrap_std(masks, outputs, points=2, seed=study, blocks=blocks).mean_std[-1])
    rng, truth = np.random.default_rng(2), np.array(estimates)
    return _ratio_with_se(np.array(old), truth, rng), _ratio_with_se(np.array(new), truth, rng)


def bootstrap(studies: int) -> None:
    bootstrapped = max(5, studies // 10)
    print(f"2. bootstrap sd / true sampling sd, overall influences, {BOOT_MODELS} models of {BOOT_K} classes "
          f"(truth over {studies} simulated studies, bootstrap of {bootstrapped} of them, 200 resamples)")
    print(f"   {'design':<34} {'old: single models':>19} {'new: whole blocks':>19}")
    for design in BOOT_DESIGNS:
        old, new = _bootstrap_design(design, studies, bootstrapped)
        print(f"   {design:<34} {old:>19} {new:>19}")


# ---------------------------------------------------------------------------------------------
# 3. What-if intervals and the all-source baseline runs

WI_K, WI_SIZE, WI_BLOCK, WI_MODELS = 20, 4, 5, 200
WI_REMOVED = [0, 1, 2]
WI_SUBSET, WI_FULL = 0.70, 0.80
WI_BASELINE_SD, WI_MODEL_SD, WI_BLOCK_SD = 0.03, 0.02, 0.01
WI_BETA = np.random.default_rng(7).normal(0, 0.01, size=WI_K)
WI_MASKS = np.array([partition_mask(0, i, WI_K, 0.2) for i in range(WI_MODELS)])


def _whatif_truth() -> float:
    """The prediction's estimand: what the formula gives with infinitely many models and runs."""
    q = float(interpolation_weight(len(WI_REMOVED), WI_K, WI_SIZE, "log"))
    d, mean_beta = WI_SIZE / (WI_K - len(WI_REMOVED)), WI_BETA.mean()
    return (1 - q) * WI_FULL + q * (WI_SUBSET + WI_SIZE * mean_beta) - d * float((WI_BETA[WI_REMOVED] - mean_beta).sum())


def _whatif_study(seed: int, runs: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(subset accuracies, all-source accuracies, blocks): a + mask·β + block shift + noise, μ + noise."""
    rng = np.random.default_rng(seed)
    blocks = np.arange(WI_MODELS) // WI_BLOCK
    shifts = rng.normal(0, WI_BLOCK_SD, size=blocks.max() + 1)[blocks]
    y = WI_SUBSET + WI_MASKS @ WI_BETA + shifts + rng.normal(0, WI_MODEL_SD, size=WI_MODELS)
    return y[:, None], (WI_FULL + rng.normal(0, WI_BASELINE_SD, size=runs))[:, None], blocks


def _whatif_coverage(runs: int, studies: int) -> tuple[list[bool], list[bool], list[float]]:
    """(old hits, new hits, new Welch–Satterthwaite dof) of the 95% interval over simulated studies."""
    truth = _whatif_truth()
    q = float(interpolation_weight(len(WI_REMOVED), WI_K, WI_SIZE, "log"))
    old, new, dof = [], [], []
    for seed in range(studies):
        y, baseline, blocks = _whatif_study(seed, runs)
        w = predict_removal(WI_MASKS, y, baseline, WI_REMOVED, WI_SIZE, ridge=0.0, blocks=blocks)
        # OLD: baseline variance of the mean of the runs (0 from one run), models as independent,
        # the ridge's residual degrees of freedom for the whole interval
        full_var = baseline.var(ddof=1) / runs if runs > 1 else 0.0
        old_se = np.sqrt((1 - q) ** 2 * full_var + q**2 * y.var(ddof=1) / WI_MODELS
                         + (WI_SIZE / (WI_K - len(WI_REMOVED)) * w.differential_stderr[0]) ** 2)
        old.append(bool(abs(w.predicted[0] - truth) <= stats.t.ppf(0.975, w.differential_dof) * old_se))
        if w.has_interval:
            low, high = w.interval(0.95)
            new.append(bool(low[0] <= truth <= high[0]))
            dof.append(float(w.dof[0]))
    return old, new, dof


def whatif(studies: int) -> None:
    print(f"3. what-if 95% interval coverage, {WI_MODELS} partition models of {WI_K} classes, removing "
          f"{len(WI_REMOVED)}, {studies:,} simulated studies per row")
    print(f"   {'baseline runs':>13} {'old (ridge dof)':>17} {'new (Welch-Satterthwaite)':>26} {'new dof, median':>16}")
    for runs in (1, 2, 3, 5):
        old, new, dof = _whatif_coverage(runs, studies)
        cell = _rate(new) if new else "no interval"
        print(f"   {runs:>13} {_rate(old):>17} {cell:>26} {np.median(dof) if dof else float('nan'):>16.1f}")


# ---------------------------------------------------------------------------------------------
# 4. One-sided lists of significantly negative classes

FDR_K, FDR_MODELS, FDR_Q, FDR_EFFECT = 60, 200, 0.1, 0.012


def _scenarios() -> dict[str, np.ndarray]:
    """Balanced: 8 harmful and 8 helpful classes (nulls' estimand exactly 0); harm only: 8 harmful
    among neutral ones (the nulls' estimand slightly positive, inside the negative list's null)."""
    balanced, harm = np.zeros(FDR_K), np.zeros(FDR_K)
    balanced[:8], balanced[8:16], harm[:8] = -FDR_EFFECT, FDR_EFFECT, -FDR_EFFECT
    return {"8 harmful, 8 helpful of 60": balanced, "8 harmful of 60": harm}


def old_negatives(infl: InfluenceEstimate, q: float) -> set[int]:
    """OLD: one Benjamini–Hochberg over two-sided p-values of all classes, keeping the negative ones."""
    t = infl.values[:, 0] / infl.stderr[:, 0]
    adjusted = stats.false_discovery_control(2 * stats.t.sf(np.abs(t), max(infl.dof, 1.0)), method="bh")
    return {int(k) for k in np.flatnonzero((adjusted <= q) & (infl.values[:, 0] < 0))}


def _negative_lists(truth: np.ndarray, studies: int) -> Iterator[tuple[set[int], set[int]]]:
    """(old, new) negative list of each simulated study (iid α = 0.5, difference of means)."""
    for study in range(studies):
        rng = np.random.default_rng(study)
        masks = np.array([iid_mask(study, i, FDR_K, 0.5) for i in range(FDR_MODELS)])
        infl = class_influence(masks, (masks @ truth)[:, None] + rng.normal(0, 0.03, size=(FDR_MODELS, 1)))
        new = {int(n) for n, v, _ in significant_classes(infl, 0, FDR_Q, alternative="less")}
        yield old_negatives(infl, FDR_Q), new


def fdr(studies: int) -> None:
    print(f"4. significantly negative classes at q = {FDR_Q}, {FDR_MODELS} iid models, {studies} simulated "
          "studies; old = two-sided BH filtered by sign, new = one-sided BH")
    print(f"   {'scenario':<27} {'true negatives found, old -> new':>33} {'new - old, paired':>18} "
          f"{'false-discovery proportion, old -> new':>42}")
    for name, truth in _scenarios().items():
        harmful = set(range(8))
        found: dict[str, list[float]] = {"old": [], "new": []}
        fdp: dict[str, list[float]] = {"old": [], "new": []}
        for old, new in _negative_lists(truth, studies):
            for label, chosen in (("old", old), ("new", new)):
                found[label].append(len(chosen & harmful))
                fdp[label].append(len(chosen - harmful) / max(len(chosen), 1))
        gain = _mean_se(np.subtract(found["new"], found["old"]))
        print(f"   {name:<27} {_mean_se(found['old']):>15} -> {_mean_se(found['new']):<14} {gain:>18} "
              f"{_mean_se(fdp['old'], 3):>19} -> {_mean_se(fdp['new'], 3)}")


# ---------------------------------------------------------------------------------------------
# 5. LASSO held-out R²

LASSO_UNITS, LASSO_TARGETS, LASSO_MODELS, LASSO_LAMBDAS = 60, 40, 240, 15


def _lasso_truth() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(true coefficients, 4,000 fresh masks, their outputs): 3 true units per target."""
    rng = np.random.default_rng(0)
    truth = np.zeros((LASSO_UNITS, LASSO_TARGETS))
    for j in range(LASSO_TARGETS):
        truth[rng.choice(LASSO_UNITS, size=3, replace=False), j] = rng.uniform(0.2, 0.4, size=3)
    fresh = rng.random((4000, LASSO_UNITS)) < 0.5
    return truth, fresh, fresh @ truth + rng.normal(scale=0.5, size=(4000, LASSO_TARGETS))


def _r2(x: np.ndarray, y: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """Per target 1 − MSE / (error of predicting the training mean), x and y centred on it."""
    return 1 - ((y - x @ coef) ** 2).mean(axis=0) / (y**2).mean(axis=0)


def old_lasso_score(masks: np.ndarray, outputs: np.ndarray, lambdas: np.ndarray, heldout: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """OLD: λ chosen on all held-out models and the R² reported on those same models.
    Returns (reported R² per target, the chosen coefficients)."""
    train = ~heldout
    x_mean, y_mean = masks[train].mean(axis=0), outputs[train].mean(axis=0)
    path = lasso_path(masks[train] - x_mean, outputs[train] - y_mean, lambdas, tol=DATAMODEL_TOL)
    xh, yh = masks[heldout] - x_mean, outputs[heldout] - y_mean
    mse = np.array([((yh - xh @ coef) ** 2).mean(axis=0) for coef in path])
    best = mse.argmin(axis=0)
    return 1 - mse[best, np.arange(mse.shape[1])] / (yh**2).mean(axis=0), path[best, :, np.arange(mse.shape[1])].T


def _lasso_dataset(seed: int, truth: np.ndarray, fresh: np.ndarray, fresh_y: np.ndarray) -> dict[str, float]:
    """One simulated dataset: old and new reported R², each fit's true R² on the fresh models, and
    the new fit's R² on its own selection models (mean over targets)."""
    draw = np.random.default_rng(100 + seed)
    masks = draw.random((LASSO_MODELS, LASSO_UNITS)) < 0.5
    outputs = masks @ truth + draw.normal(scale=0.5, size=(LASSO_MODELS, LASSO_TARGETS))
    new = lasso_datamodel(masks, outputs, n_lambdas=LASSO_LAMBDAS, holdout=0.5, seed=seed, patience=None)
    train = ~new.heldout_models
    x_mean, y_mean = masks[train].mean(axis=0), outputs[train].mean(axis=0)
    old_r2, old_coef = old_lasso_score(masks, outputs, new.lambdas, new.heldout_models)
    ys = outputs[new.selection_models] - y_mean
    selection_mse = new.heldout_mse[new.chosen_index, np.arange(LASSO_TARGETS)]
    return {
        "old": float(old_r2.mean()),
        "old truth": float(_r2(fresh - x_mean, fresh_y - y_mean, old_coef).mean()),
        "new": float(new.heldout_r2.mean()),
        "new truth": float(_r2(fresh - x_mean, fresh_y - y_mean, new.values.astype(np.float64)).mean()),
        "selection half": float((1 - selection_mse / (ys**2).mean(axis=0)).mean()),
    }


def lasso(datasets: int) -> None:
    truth, fresh, fresh_y = _lasso_truth()
    print(f"5. LASSO held-out R^2, {LASSO_MODELS} models (half held out) of {LASSO_UNITS} units, {LASSO_TARGETS} "
          f"targets, {datasets} simulated datasets; truth = the chosen fit's R^2 on 4,000 fresh models")
    found = [_lasso_dataset(seed, truth, fresh, fresh_y) for seed in range(datasets)]
    rows = {key: [f[key] for f in found] for key in found[0]}
    bias_old = np.subtract(rows["old"], rows["old truth"])
    bias_new = np.subtract(rows["new"], rows["new truth"])
    print(f"   old: chosen and scored on all {LASSO_MODELS // 2} held-out models  reported {_mean_se(rows['old'], 3)}  "
          f"truth {_mean_se(rows['old truth'], 3)}  reported - truth {_mean_se(bias_old, 3)}")
    print(f"   new: chosen on {LASSO_MODELS // 4}, scored on the other {LASSO_MODELS // 4}      reported {_mean_se(rows['new'], 3)}  "
          f"truth {_mean_se(rows['new truth'], 3)}  reported - truth {_mean_se(bias_new, 3)}")
    print(f"   (the new fit's R^2 on its own {LASSO_MODELS // 4} selection models: {_mean_se(rows['selection half'], 3)}; "
          f"new truth - old truth, paired: {_mean_se(np.subtract(rows['new truth'], rows['old truth']), 3)})")


# ---------------------------------------------------------------------------------------------
# 6. LDS of ridge and of the difference of means

LDS_K, LDS_EXAMPLES = 40, 20


def _lds_row(sim: StudySimulator, alpha: float, m: int, repeats: int) -> dict[str, list[float]]:
    """LDS of each estimator (fitted on 75% of the blocks) and of the true datamodel, per study."""
    block, size = partition_block_size(alpha), partition_subset_size(LDS_K, alpha)
    ceiling = sim.true_influence(size=size, estimator="ridge", level="example")
    scores: dict[str, list[float]] = {"dim": [], "ridge": [], "truth": []}
    for rep in range(repeats):
        masks = np.array([partition_mask(50 + rep, i, LDS_K, alpha) for i in range(m)])
        blocks = np.arange(m) // block
        y = sim.outputs(masks, 60 + rep, blocks)
        for estimator in ("dim", "ridge"):
            scores[estimator].append(fit_and_score(masks, y, estimator, blocks=blocks, seed=rep).mean)
        scores["truth"].append(linear_datamodeling_score(masks, y, ceiling, blocks=blocks).mean)
    return scores


def lds(repeats: int) -> None:
    sim = StudySimulator(SimulatorSpec(num_classes=LDS_K, examples_per_class=LDS_EXAMPLES, block_noise=0.02, seed=4))
    print(f"6. LDS (Spearman over held-out models, mean over {sim.num_targets} examples), simulated partition "
          f"studies (K = {LDS_K}, seed per block), 25% of blocks held out, {repeats} studies per row")
    print(f"   {'alpha':>5} {'models':>6} {'difference of means':>20} {'ridge':>15} {'ridge - dim, paired':>20} {'true datamodel':>15}")
    for alpha in (0.1, 0.5):
        for m in (100, 300, 1000):
            s = _lds_row(sim, alpha, m, repeats)
            gain = _mean_se(np.subtract(s["ridge"], s["dim"]), 3)
            print(f"   {alpha:>5} {m:>6} {_mean_se(s['dim'], 3):>20} {_mean_se(s['ridge'], 3):>15} {gain:>20} "
                  f"{_mean_se(s['truth'], 3):>15}")


SECTIONS: dict[int, tuple[Callable[[int], None], int]] = {
    1: (recommendation, 100_000), 2: (bootstrap, 200), 3: (whatif, 2_000), 4: (fdr, 300), 5: (lasso, 40), 6: (lds, 4),
}
"""section → (function, its trial count at --scale 1)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every section's trial count")
    parser.add_argument("--sections", default="1,2,3,4,5,6", help="comma-separated sections to run")
    args = parser.parse_args()
    chosen = [s.strip() for s in args.sections.split(",")]
    unknown = [s for s in chosen if not s.isdigit() or int(s) not in SECTIONS]
    if unknown:
        parser.error(f"--sections {args.sections}: {unknown} not among the sections {sorted(SECTIONS)}; e.g. --sections 1,3")
    if args.scale <= 0:
        parser.error(f"--scale {args.scale}: must be > 0 (1 = the default trial counts)")
    with threadpool_limits(1):
        for section in chosen:
            function, trials = SECTIONS[int(section)]
            start = time.perf_counter()
            function(max(2, round(trials * args.scale)))
            print(f"   ({time.perf_counter() - start:.1f} s)\n")


if __name__ == "__main__":
    main()
