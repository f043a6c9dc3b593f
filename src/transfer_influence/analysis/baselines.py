"""Baselines: do the study's backbones beat a random-init one, and how far from the all-source one?

Why the differences carry intervals: the report's first verdict is whether pretraining on the
study's subsets beats an untrained backbone at all (docs/method.md: if it does not, influences mean
little). That comparison rests on a handful of baseline seeds (``baselines.repeats``, 3 on the
demo), so a gap of a point can be noise; the report states it as a difference with its interval,
never as "the same".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from ..study.results import StudyResults

RANDOM_INIT = "random-init backbone + same head"
ALL_SOURCE = "backbone trained on all source classes"


@dataclass(frozen=True)
class BaselineSummary:
    """Target accuracy of each baseline backbone (mean, std, count) beside the subset models'."""

    rows: dict[str, tuple[float, float, int]]


def subset_label(alpha: float) -> str:
    """The row label of the study's own models."""
    return f"backbones on random {alpha:g} subsets (the study's models)"


def baseline_summary(results: StudyResults) -> BaselineSummary:
    rows: dict[str, tuple[float, float, int]] = {}
    labels = {"random_init": RANDOM_INIT, "all_source": ALL_SOURCE}
    for kind, label in labels.items():
        acc = results.baselines.get(kind, np.zeros(0))
        if acc.size:
            rows[label] = (float(acc.mean()), float(acc.std(ddof=1)) if acc.size > 1 else 0.0, int(acc.size))
    if results.num_models:
        acc = results.target_accuracy
        rows[subset_label(results.config.design.alpha)] = (
            float(acc.mean()),
            float(acc.std(ddof=1)) if acc.size > 1 else 0.0,
            int(acc.size),
        )
    return BaselineSummary(rows)


@dataclass(frozen=True)
class MeanEstimate:
    """A mean with its standard error and degrees of freedom (NaN error from a single run)."""

    mean: float
    stderr: float
    dof: float
    count: int


def mean_estimate(values: np.ndarray, blocks: np.ndarray | None = None) -> MeanEstimate:
    """Mean of ``values`` with its standard error.

    Independent runs: s/√n on n − 1 degrees of freedom. With ``blocks`` (a design block per run,
    as ``StudyResults.blocks`` gives) the runs of a block share a seed and are not independent, so
    the error is the cluster-robust one over blocks, G/(G−1)·Σ n_b²(ȳ_b − ȳ)²/N², on G − 1 degrees
    of freedom (var(block means)/G for equal blocks)."""
    y = np.asarray(values, dtype=np.float64)
    n = y.size
    if n == 0:
        raise ValueError("a mean needs at least one value")
    mean = float(y.mean())
    if blocks is None:
        if n < 2:
            return MeanEstimate(mean, float("nan"), 0.0, n)
        return MeanEstimate(mean, float(y.std(ddof=1) / math.sqrt(n)), float(n - 1), n)
    ids, inverse, sizes = np.unique(np.asarray(blocks), return_inverse=True, return_counts=True)
    g = ids.size
    if g < 2:
        return MeanEstimate(mean, float("nan"), 0.0, n)
    block_means = np.bincount(inverse, weights=y) / sizes
    variance = g / (g - 1) * float((sizes**2 * (block_means - mean) ** 2).sum()) / n**2
    return MeanEstimate(mean, math.sqrt(variance), float(g - 1), n)


@dataclass(frozen=True)
class AccuracyDifference:
    """Mean target accuracy of ``better`` backbones minus ``baseline`` ones, with a Welch t interval.

    The two groups are independent seeds, so the variance of the difference is the sum of the two
    means' variances, with Welch–Satterthwaite degrees of freedom. With a single run on a side its
    spread is unknown: the standard error is NaN and no interval is given (never a silent zero)."""

    better: str
    baseline: str
    first: MeanEstimate
    second: MeanEstimate

    @property
    def difference(self) -> float:
        return self.first.mean - self.second.mean

    @property
    def stderr(self) -> float:
        return math.sqrt(self.first.stderr**2 + self.second.stderr**2)

    @property
    def dof(self) -> float:
        """Welch–Satterthwaite degrees of freedom (NaN without an error on both sides)."""
        a, b = self.first.stderr**2, self.second.stderr**2
        if not (math.isfinite(a) and math.isfinite(b)) or a + b == 0:
            return float("nan")
        parts = (a**2 / self.first.dof if a else 0.0) + (b**2 / self.second.dof if b else 0.0)
        return (a + b) ** 2 / parts

    def interval(self, level: float = 0.95) -> tuple[float, float]:
        """Two-sided t interval of the difference (NaN, NaN when it has no error)."""
        if not math.isfinite(self.dof):
            return float("nan"), float("nan")
        half = float(stats.t.ppf(0.5 + level / 2, self.dof)) * self.stderr
        return self.difference - half, self.difference + half

    def verdict(self, level: float = 0.95) -> str:
        """``higher`` or ``lower`` (the interval excludes 0), ``undecided`` (it holds 0) or
        ``unmeasured`` (no interval: a side has a single run)."""
        low, high = self.interval(level)
        if not math.isfinite(low):
            return "unmeasured"
        if low > 0:
            return "higher"
        if high < 0:
            return "lower"
        return "undecided"


def accuracy_difference(
    better: str, first: np.ndarray, baseline: str, second: np.ndarray, first_blocks: np.ndarray | None = None
) -> AccuracyDifference:
    """``first`` minus ``second`` mean accuracy; ``first_blocks``: design blocks of the first group's runs."""
    return AccuracyDifference(better, baseline, mean_estimate(first, first_blocks), mean_estimate(second))


def pretraining_gains(results: StudyResults) -> list[AccuracyDifference]:
    """The study's subset models and the all-source backbone, each against the random-init one
    (none without random-init runs): does pretraining on a subset, or on everything, help at all?"""
    random_init = results.baselines.get("random_init", np.zeros(0))
    if random_init.size == 0:
        return []
    gains = []
    if results.num_models:
        gains.append(accuracy_difference(
            subset_label(results.config.design.alpha), results.target_accuracy, RANDOM_INIT, random_init,
            results.blocks,
        ))
    all_source = results.baselines.get("all_source", np.zeros(0))
    if all_source.size:
        gains.append(accuracy_difference(ALL_SOURCE, all_source, RANDOM_INIT, random_init))
    return gains
