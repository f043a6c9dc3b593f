"""What-if intervals against simulated truth: the Welch–Satterthwaite t interval covers the
prediction's expectation about 95% of the time when most of its variance is the mean of a few
all-source baseline runs (as on the demo), where the ridge's degrees of freedom fell short; with a
single baseline run no interval is given at all.

The simulated study is the what-if model itself: a partition design (blocks of 5 disjoint 4-class
subsets of 20 classes, a shift shared by each block's models, as one seed per block gives), subset
accuracy a + mask·β + noise, and all-source runs μ + noise. The estimand of the prediction is
(1 − w)·μ + w·(a + s·mean β) − d·Σ_{k∈R}(β_k − mean β): what the formula gives with infinitely
many models and baseline runs (the interpolation itself is a model, checked by retraining).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest
from scipy import stats
from threadpoolctl import threadpool_limits

from transfer_influence.analysis.whatif import interpolation_weight, predict_removal
from transfer_influence.errors import InputError
from transfer_influence.study.design import partition_mask

K, ALPHA, SIZE, BLOCK = 20, 0.2, 4, 5
MODELS, STUDIES = 200, 2000
REMOVED = [0, 1, 2]
SUBSET_LEVEL, FULL_LEVEL = 0.70, 0.80
BASELINE_SD, MODEL_SD, BLOCK_SD = 0.03, 0.02, 0.01
BETA = np.random.default_rng(7).normal(0, 0.01, size=K)


def _truth() -> float:
    q = float(interpolation_weight(len(REMOVED), K, SIZE, "log"))
    d = SIZE / (K - len(REMOVED))
    mean_beta = BETA.mean()
    return (1 - q) * FULL_LEVEL + q * (SUBSET_LEVEL + SIZE * mean_beta) - d * float((BETA[REMOVED] - mean_beta).sum())


MASKS = np.array([partition_mask(0, i, K, ALPHA) for i in range(MODELS)])
"""One design for every simulated study: the intervals are conditional on the masks (fixed-size
subsets leave the estimand independent of them), and drawing them anew would only cost time."""


def _study(seed: int, runs: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    masks = MASKS
    blocks = np.arange(MODELS) // BLOCK
    shifts = rng.normal(0, BLOCK_SD, size=blocks.max() + 1)[blocks]
    y = SUBSET_LEVEL + masks @ BETA + shifts + rng.normal(0, MODEL_SD, size=MODELS)
    baseline = FULL_LEVEL + rng.normal(0, BASELINE_SD, size=runs)
    return masks, y[:, None], baseline[:, None], blocks


@lru_cache(maxsize=None)
def coverages(runs: int) -> dict[str, float]:
    """Share of 95% intervals holding the truth: the new one (Welch–Satterthwaite) and the old
    (ridge dof, models as independent, a single run's baseline variance taken as 0); plus the
    baseline's share of the prediction's variance."""
    truth = _truth()
    q = float(interpolation_weight(len(REMOVED), K, SIZE, "log"))
    new, old, share = [], [], []
    with threadpool_limits(1):
        for seed in range(STUDIES):
            masks, y, baseline, blocks = _study(seed, runs)
            w = predict_removal(masks, y, baseline, REMOVED, SIZE, ridge=0.0, blocks=blocks)
            full_var = baseline.var(ddof=1) / runs if runs > 1 else 0.0
            old_se = np.sqrt((1 - q) ** 2 * full_var + q**2 * y.var(ddof=1) / MODELS
                             + (SIZE / (K - 3) * w.differential_stderr[0]) ** 2)
            old.append(abs(w.predicted[0] - truth) <= stats.t.ppf(0.975, w.differential_dof) * old_se)
            if w.has_interval:
                low, high = w.interval(0.95)
                new.append(low[0] <= truth <= high[0])
                share.append((1 - q) ** 2 * full_var / w.predicted_stderr[0] ** 2)
    return {"new": float(np.mean(new)) if new else float("nan"), "old": float(np.mean(old)),
            "baseline_share": float(np.mean(share)) if share else float("nan")}


def test_interval_covers_about_95_percent_with_three_baseline_runs() -> None:
    found = coverages(3)
    assert found["baseline_share"] > 0.9  # the demo's regime: the baseline mean dominates the variance
    assert 0.93 <= found["new"] <= 0.97, found
    assert found["old"] < 0.90, found  # the ridge's dof treated a 2-dof variance as exact


def test_one_baseline_run_gives_no_interval_rather_than_a_silent_zero() -> None:
    masks, y, baseline, blocks = _study(0, 1)
    w = predict_removal(masks, y, baseline, REMOVED, SIZE, ridge=0.0, blocks=blocks)
    assert not w.has_interval and np.isnan(w.predicted_stderr).all()
    with pytest.raises(InputError, match="baselines.repeats ≥ 2"):
        w.interval(0.95)
    assert "no error term" in w.interval_note
    assert coverages(1)["old"] < 0.5  # what the old zero variance gave: far below 95%


def test_welch_satterthwaite_dof_is_that_of_the_dominant_part() -> None:
    masks, y, baseline, blocks = _study(1, 3)
    w = predict_removal(masks, y, baseline, REMOVED, SIZE, ridge=0.0, blocks=blocks)
    assert 2.0 <= w.dof[0] < 4.0 < w.differential_dof


def test_predictions_outside_zero_one_are_clipped_and_flagged() -> None:
    masks, y, baseline, blocks = _study(2, 3)
    high = predict_removal(masks, y + 0.5, baseline + 0.5, REMOVED, SIZE, ridge=0.0, blocks=blocks)
    assert high.predicted[0] == 1.0 and high.clipped[0] and high.any_clipped
    low, top = high.interval(0.95)
    assert 0.0 <= low[0] <= top[0] <= 1.0
    # centred on the unclipped prediction, then clipped: an overshoot never drags the lower end down
    half = high.critical_value(0.95)[0] * high.predicted_stderr[0]
    assert high.unclipped is not None and high.unclipped[0] > 1.0
    assert low[0] == pytest.approx(min(1.0, high.unclipped[0] - half)) and low[0] > 1.0 - half
    inside = predict_removal(masks, y, baseline, REMOVED, SIZE, ridge=0.0, blocks=blocks)
    assert 0 < inside.predicted[0] < 1 and not inside.any_clipped


def test_removals_below_the_smallest_measured_source_are_refused() -> None:
    masks, y, baseline, blocks = _study(3, 3)
    with pytest.raises(InputError, match=r"sources of 4 \(its subsets\) to 20 classes.*remove at most 16"):
        predict_removal(masks, y, baseline, list(range(17)), SIZE, blocks=blocks)
    assert predict_removal(masks, y, baseline, list(range(16)), SIZE, blocks=blocks).predicted.shape == (1,)
