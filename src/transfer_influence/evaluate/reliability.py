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
    """``(masks, outputs, blocks) → InfluenceEstimate`` for the named estimator (checked up front).

    Blocks reach only ridge, whose coefficients depend on them (a fixed effect per block); the
    difference of means uses them for standard errors alone, which these diagnostics never read.
    """
    check_estimator(name)
    if name == "dim":
        return lambda masks, outputs, blocks: estimate(name, masks, outputs)
    return lambda masks, outputs, blocks: estimate(name, masks, outputs, blocks=blocks)


def _shuffled_groups(m: int, blocks: np.ndarray | None, rng: np.random.Generator) -> list[np.ndarray]:
    """The models' rows in random order, grouped: one group per design block, so that any run of
    whole groups holds whole blocks (each half of a balanced design is then itself balanced, as
    the real study is, and a block's shared seed never straddles two halves); without blocks,
    every model is its own group."""
    if blocks is None:
        return [np.array([i]) for i in rng.permutation(m)]
    _, inverse, counts = np.unique(_checked_blocks(blocks, m), return_inverse=True, return_counts=True)
    by_block = np.split(np.argsort(inverse, kind="stable"), np.cumsum(counts)[:-1])
    return [by_block[i] for i in rng.permutation(counts.size)]


def _checked_blocks(blocks: np.ndarray, m: int) -> np.ndarray:
    blocks = np.asarray(blocks)
    if blocks.shape != (m,):
        raise InputError(f"blocks must hold one design block id per model ({m}), got shape {blocks.shape}")
    return blocks


def _num_groups(m: int, blocks: np.ndarray | None) -> int:
    return m if blocks is None else int(np.unique(_checked_blocks(blocks, m)).size)


def _rows(groups: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(groups) if groups else np.array([], dtype=np.int64)


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
        """Spearman–Brown step-up: reliability of the estimate from all models (twice a half).
        Only a positive split-half correlation steps up; a non-positive one is returned as it is
        (2r/(1+r) would report −1.2 for r = −0.38, a reliability below −1)."""
        r = self.at_full_size
        return 2 * r / (1 + r) if r > 0 else r


def _fit_spearman_brown(h: np.ndarray, r: np.ndarray) -> float:
    """Least-squares c in r = h/(h+c) over points with positive r (c = h(1−r)/r at one point)."""
    keep = r > 0.02
    if not keep.any():
        return float("inf")
    grid = np.exp(np.linspace(np.log(1.0), np.log(1e7), 400))
    errors = [((h[keep] / (h[keep] + c) - r[keep]) ** 2).sum() for c in grid]
    return float(grid[int(np.argmin(errors))])


def _half_sizes(num_groups: int, models_per_group: float, points: int) -> np.ndarray:
    """Groups (models, or whole blocks) per half on the curve: ``points`` sizes up to half of the
    groups, the smallest holding at least 4 models."""
    half = num_groups // 2
    if half < 1:
        return np.array([], dtype=int)  # one block cannot be halved: no point is measurable yet
    smallest = min(half, max(int(np.ceil(4 / models_per_group)), half // 2 ** (points - 1), 1))
    return np.unique(np.linspace(smallest, half, points).astype(int))


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
    With ``blocks`` every half, at every size, holds whole design blocks, and the curve's
    ``models_per_half`` is the mean number of models the halves held. Sizes at which a half leaves
    some class always in or always out are skipped; with a single block there is no point at all
    (the curve is empty and its ``at_full_size`` NaN), as in a study's first checks.
    """
    masks = np.asarray(masks, dtype=bool)
    m = masks.shape[0]
    if m < 8:
        raise InputError(f"split-half reliability needs at least 8 models, got {m}")
    fit = fitter_for(estimator_name)
    data = level_outputs(outputs, target_labels, num_target_classes)
    rng = np.random.default_rng(seed)
    num_groups = _num_groups(m, blocks)
    sizes = _half_sizes(num_groups, m / num_groups, points)
    values: dict[str, list[list[float]]] = {level: [[] for _ in sizes] for level in levels}
    models: list[list[float]] = [[] for _ in sizes]
    for _ in range(repeats):
        groups = _shuffled_groups(m, blocks, rng)
        half = len(groups) // 2
        for i, size in enumerate(sizes):
            a, b = _rows(groups[:size]), _rows(groups[half : half + size])
            if not (_halves_vary(masks[a]) and _halves_vary(masks[b])):
                continue
            models[i].append((a.size + b.size) / 2)
            for level in levels:
                y = data[level]
                first = fit(masks[a], y[a], _sub(blocks, a)).values
                second = fit(masks[b], y[b], _sub(blocks, b)).values
                values[level][i].append(_spearman(first, second))
    curves: dict[str, ReliabilityCurve] = {}
    for level in levels:
        usable = [i for i, v in enumerate(values[level]) if v]
        h = np.array([np.mean(models[i]) for i in usable], dtype=float)
        r = np.array([np.mean(values[level][i]) for i in usable])
        spread = np.array([np.std(values[level][i]) for i in usable])
        curves[level] = ReliabilityCurve(level, h, r, spread, _fit_spearman_brown(h, r))
    return curves


def _held_out_groups(groups: list[np.ndarray], fraction: float) -> int:
    """How many of the shuffled groups to hold out: about ``fraction`` of the models, at least 4."""
    sizes = np.cumsum([g.size for g in groups])
    wanted = max(4, int(round(fraction * sizes[-1])))
    return int(min(np.searchsorted(sizes, wanted) + 1, len(groups)))


def held_out_rows(
    m: int, blocks: np.ndarray | None = None, held_out_fraction: float = 0.25, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(training rows, held-out rows) of the held-out split every held-out score uses (held-out
    Spearman here, the LDS in ``lds``): about ``held_out_fraction`` of the models, whole blocks."""
    groups = _shuffled_groups(m, blocks, np.random.default_rng(seed))
    held = _held_out_groups(groups, held_out_fraction)
    return _rows(groups[held:]), _rows(groups[:held])


def unmeasured_units(masks: np.ndarray) -> np.ndarray:
    """Columns of ``masks`` that are in every row or in none: no estimator can measure them there."""
    counts = np.asarray(masks, dtype=bool).sum(axis=0)
    return np.flatnonzero((counts == 0) | (counts == masks.shape[0]))


def held_out_problem(
    masks: np.ndarray,
    blocks: np.ndarray | None = None,
    held_out_fraction: float = 0.25,
    seed: int = 0,
    unit_names: tuple[str, ...] | None = None,
) -> str | None:
    """Why the held-out split cannot be scored, or None when it can.

    Why this exists: a study can pass the plan check (every class in and out of *some* subset) and
    still leave a class in no subset of the models the held-out score is fitted on — a partition
    block of the demo sits 2 of its 72 classes out, so with two blocks, fitting on one of them
    cannot estimate those 2. The diagnostics then skip the score with this reason instead of failing."""
    masks = np.asarray(masks, dtype=bool)
    train, test = held_out_rows(masks.shape[0], blocks, held_out_fraction, seed)
    if train.size < 4 or test.size < 3:
        return (f"the held-out split (whole design blocks) leaves {train.size} models to fit on and {test.size} to "
                "score; it needs at least 4 and 3: train a few more blocks")
    missing = unmeasured_units(masks[train])
    if missing.size:
        names = [unit_names[k] if unit_names is not None else f"column {k}" for k in missing[:8]]
        more = f" and {missing.size - 8} more" if missing.size > 8 else ""
        return (f"the {train.size} models the held-out score is fitted on hold {missing.size} classes in every subset or "
                f"in none ({', '.join(map(repr, names))}{more}), so their influence cannot be fitted there; "
                "train more models (more design blocks)")
    return None


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
    prediction and actual output, averaged over the level's columns. With ``blocks`` the held-out
    models are whole design blocks. When the split cannot be scored (``held_out_problem``: whole
    blocks leave too few models on a side, as in a study's first block, or the models fitted on
    leave some class always in or always out) every score is NaN.
    """
    masks = np.asarray(masks, dtype=bool)
    m = masks.shape[0]
    if m < 8:
        raise InputError(f"held-out Spearman needs at least 8 models, got {m}")
    if held_out_problem(masks, blocks, held_out_fraction, seed) is not None:
        return {level: float("nan") for level in LEVELS}
    train, test = held_out_rows(m, blocks, held_out_fraction, seed)
    fit = fitter_for(estimator_name)
    scores: dict[str, float] = {}
    for level, y in level_outputs(outputs, target_labels, num_target_classes).items():
        infl = fit(masks[train], y[train], _sub(blocks, train)).values
        centred = masks[test] - masks[train].mean(axis=0)
        predicted = centred @ infl
        per_column = [_spearman(predicted[:, j], y[test][:, j]) for j in range(y.shape[1])]
        scores[level] = float(np.mean(per_column))
    return scores
