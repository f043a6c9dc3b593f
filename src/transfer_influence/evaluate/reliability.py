"""How far to trust a study's influences: split-half reliability and held-out prediction.

Everything in ``evaluate`` works on (masks, outputs) alone, so it runs on any finished or partial
study, for any output kind and either estimator (paper App. A.5 and F):

* split-half reliability — Spearman between influences from two disjoint halves of the models, at
  three levels (class overall, class × target class, class × example) and for growing numbers of
  models, with the number of models a requested reliability needs (Spearman–Brown curve fitted to
  the measured points);
* held-out Spearman — influences used as a linear model predicting held-out models' outputs
  (Figure 29).

The bootstrap error (Figure 8) is in ``bootstrap``, false discoveries (Figure 30, Benjamini–Hochberg)
in ``fdr``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import stats

from ..errors import InputError
from ..estimate import InfluenceEstimate, check_estimator, estimate, group_means

LEVELS = ("overall", "target_class", "example")
LEVEL_NAMES = {"overall": "class overall", "target_class": "class × target class", "example": "class × example"}


def fitter_for(name: str) -> Callable[..., InfluenceEstimate]:
    """``(masks, outputs, blocks) → InfluenceEstimate`` for the named estimator (checked up front)."""
    check_estimator(name)
    return lambda masks, outputs, blocks: estimate(name, masks, outputs, blocks=blocks)


def _split(m: int, blocks: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    """A random order of the models; with blocks, whole blocks stay together (so that each half of a
    balanced design is itself balanced, as the real study is)."""
    if blocks is None:
        return rng.permutation(m)
    ids = np.unique(blocks)
    order = rng.permutation(ids)
    return np.concatenate([np.flatnonzero(blocks == b) for b in order])


def _sub(blocks: np.ndarray | None, rows: np.ndarray) -> np.ndarray | None:
    return None if blocks is None else blocks[rows]


def level_outputs(outputs: np.ndarray, target_labels: np.ndarray, num_target_classes: int) -> dict[str, np.ndarray]:
    """The outputs each level's influences are estimated on: row means, class means, examples."""
    y = np.asarray(outputs, dtype=np.float32)
    return {
        "overall": y.mean(axis=1, keepdims=True),
        "target_class": group_means(y, target_labels, num_target_classes),
        "example": y,
    }


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        rho = stats.spearmanr(a.ravel(), b.ravel()).statistic
    return float(rho) if np.isfinite(rho) else 0.0


def _halves_vary(masks: np.ndarray) -> bool:
    counts = masks.sum(axis=0)
    return bool(((counts > 0) & (counts < masks.shape[0])).all())


@dataclass(frozen=True)
class ReliabilityCurve:
    """Split-half Spearman against models per half, for one level, output kind and estimator."""

    level: str
    models_per_half: np.ndarray
    spearman: np.ndarray
    spread: np.ndarray
    spearman_brown_c: float
    """Fitted r(h) = h / (h + c) for h models per half: the Spearman–Brown curve."""

    @property
    def at_full_size(self) -> float:
        """Split-half Spearman at the largest half size (NaN when no split could be measured)."""
        return float(self.spearman[-1]) if self.spearman.size else float("nan")

    def predicted(self, models_per_half: float) -> float:
        return models_per_half / (models_per_half + self.spearman_brown_c)

    def models_for(self, reliability: float) -> float:
        """Total models (both halves) for the split-half Spearman to reach ``reliability``."""
        if not 0 < reliability < 1:
            raise InputError("reliability must lie strictly between 0 and 1")
        return 2 * self.spearman_brown_c * reliability / (1 - reliability)

    @property
    def full_study_reliability(self) -> float:
        """Spearman–Brown step-up: reliability of the estimate from all models (twice a half)."""
        r = self.at_full_size
        return 2 * r / (1 + r) if r > -1 else r


def _fit_spearman_brown(h: np.ndarray, r: np.ndarray) -> float:
    """Least-squares c in r = h/(h+c) over points with positive r (c = h(1−r)/r at one point)."""
    keep = r > 0.02
    if not keep.any():
        return float("inf")
    grid = np.exp(np.linspace(np.log(1.0), np.log(1e7), 400))
    errors = [((h[keep] / (h[keep] + c) - r[keep]) ** 2).sum() for c in grid]
    return float(grid[int(np.argmin(errors))])


def split_half_reliability(
    masks: np.ndarray,
    outputs: np.ndarray,
    target_labels: np.ndarray,
    num_target_classes: int,
    estimator_name: str = "dim",
    levels: tuple[str, ...] = LEVELS,
    points: int = 5,
    repeats: int = 4,
    seed: int = 0,
    blocks: np.ndarray | None = None,
) -> dict[str, ReliabilityCurve]:
    """Split the models into random disjoint halves, estimate on each, and correlate.

    Repeated over ``repeats`` random splits and for ``points`` half sizes up to m/2 (each smaller
    size uses the first models of each half), so the curve shows how reliability grows with m.
    """
    masks = np.asarray(masks, dtype=bool)
    m = masks.shape[0]
    if m < 8:
        raise InputError(f"split-half reliability needs at least 8 models, got {m}")
    fit = fitter_for(estimator_name)
    data = level_outputs(outputs, target_labels, num_target_classes)
    half = m // 2
    sizes = np.unique(np.linspace(max(4, half // 2 ** (points - 1)), half, points).astype(int))
    rng = np.random.default_rng(seed)
    values: dict[str, list[list[float]]] = {level: [[] for _ in sizes] for level in levels}
    for _ in range(repeats):
        order = _split(m, blocks, rng)
        for i, size in enumerate(sizes):
            a, b = order[:size], order[half : half + size]
            if not (_halves_vary(masks[a]) and _halves_vary(masks[b])):
                continue
            for level in levels:
                y = data[level]
                first = fit(masks[a], y[a], _sub(blocks, a)).values
                second = fit(masks[b], y[b], _sub(blocks, b)).values
                values[level][i].append(_spearman(first, second))
    curves: dict[str, ReliabilityCurve] = {}
    for level in levels:
        usable = [i for i, v in enumerate(values[level]) if v]
        h = sizes[usable].astype(float)
        r = np.array([np.mean(values[level][i]) for i in usable])
        spread = np.array([np.std(values[level][i]) for i in usable])
        curves[level] = ReliabilityCurve(level, h, r, spread, _fit_spearman_brown(h, r))
    return curves


def held_out_spearman(
    masks: np.ndarray,
    outputs: np.ndarray,
    target_labels: np.ndarray,
    num_target_classes: int,
    estimator_name: str = "dim",
    held_out_fraction: float = 0.25,
    seed: int = 0,
    blocks: np.ndarray | None = None,
) -> dict[str, float]:
    """Influences from the other models as a linear model of held-out models' outputs (Figure 29).

    For each level and each of its columns, the prediction for a held-out model is
    Σ_k (mask_k − mean mask_k)·Infl_k, and the score is the Spearman over held-out models between
    prediction and actual output, averaged over the level's columns.
    """
    masks = np.asarray(masks, dtype=bool)
    m = masks.shape[0]
    held = max(4, int(round(held_out_fraction * m)))
    if m - held < 4:
        raise InputError(f"held-out Spearman needs at least 8 models, got {m}")
    order = _split(m, blocks, np.random.default_rng(seed))
    test, train = order[:held], order[held:]
    fit = fitter_for(estimator_name)
    scores: dict[str, float] = {}
    for level, y in level_outputs(outputs, target_labels, num_target_classes).items():
        infl = fit(masks[train], y[train], _sub(blocks, train)).values
        centred = masks[test] - masks[train].mean(axis=0)
        predicted = centred @ infl
        per_column = [_spearman(predicted[:, j], y[test][:, j]) for j in range(y.shape[1])]
        scores[level] = float(np.mean(per_column))
    return scores
