"""Recommending the best of several arms without the winner's curse: choose on one set of seeds,
confirm on fresh ones.

A counterfactual sweep retrains ~16 arms (removals) with the same R seeds and reports each arm's
paired gain over the full source. Taking the arm with the largest gain *and* that gain's own
2-standard-error test reuses the seeds that chose it: with nine removals that change nothing, the
largest of nine noisy gains clears 2 SE in 20% of sweeps at R = 10 and in 57% at R = 2, so a pruned
source that is no better would be recommended that often. The rule here separates the two steps:

1. ``choose_arm`` picks the arm with the largest mean paired gain on the *selection* seeds (none
   when no gain is positive: then there is nothing to confirm and nothing is retrained);
2. ``confirm_gain`` tests the chosen arm's paired gain on R *fresh* seeds that played no part in the
   choice, one-sided, against a t(R − 1) quantile at level ``CONFIRM_LEVEL``.

The fresh seeds are independent of the choice, so under "no arm helps" the confirmation test keeps
its level whatever the choice was: a removal is recommended at most 5% of the time. Numpy and scipy
only, vectorised over leading axes, so the rule can be simulated over thousands of sweeps in
milliseconds (tests/test_recommendation.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIRM_LEVEL = 0.05
"""One-sided level of the confirmation test: the most often a removal with no real gain is recommended."""

INTERVAL_LEVEL = 0.95
"""Coverage of the two-sided t interval reported beside the test."""

MIN_SEEDS = 3
"""The fewest seeds per arm the rule accepts. Two seeds leave the paired standard error one degree
of freedom: the one-sided 5% critical value is t(1) = 6.31 standard errors (2.92 at three seeds,
1.83 at ten), so a real gain of 5 SE would be confirmed only 57% of the time (92% at three seeds,
99.8% at ten), and a t test on a single degree of freedom leans hardest on the seed noise being
normal."""


def paired_mean_and_se(differences: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard error (sd / √R) over the last axis of per-seed paired differences."""
    d = np.asarray(differences, dtype=np.float64)
    return d.mean(axis=-1), d.std(axis=-1, ddof=1) / np.sqrt(d.shape[-1])


def choose_arm(selection_gains: np.ndarray) -> np.ndarray:
    """Index of the arm with the largest mean selection-seed gain, or −1 where no arm's mean gain
    is positive (nothing is worth confirming). ``selection_gains``: (..., arms, seeds) paired
    differences arm − full source; returns an int array of shape (...)."""
    means = np.asarray(selection_gains, dtype=np.float64).mean(axis=-1)
    if means.shape[-1] == 0:
        return np.full(means.shape[:-1], -1, dtype=np.int64)
    best = means.argmax(axis=-1)
    positive = np.take_along_axis(means, best[..., None], axis=-1)[..., 0] > 0
    return np.where(positive, best, -1).astype(np.int64)


def one_sided_p(mean: np.ndarray, stderr: np.ndarray, dof: float) -> np.ndarray:
    """P(T ≥ mean / SE) for T ~ t(dof): small when the gain is convincingly positive. A zero SE
    (every seed gave the same difference) reads as certainty either way: p = 0 for a positive
    mean, 1 otherwise."""
    mean, stderr = np.asarray(mean, dtype=np.float64), np.asarray(stderr, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(stderr > 0, mean / stderr, np.where(mean > 0, np.inf, -np.inf))
    return stats.t.sf(t, dof)


def confirmed(differences: np.ndarray, level: float = CONFIRM_LEVEL) -> np.ndarray:
    """Whether the paired gains over the last axis (fresh seeds) are positive at one-sided ``level``."""
    mean, se = paired_mean_and_se(differences)
    return one_sided_p(mean, se, np.asarray(differences).shape[-1] - 1) < level


@dataclass(frozen=True)
class Confirmation:
    """The chosen arm's paired gain over the full source on the fresh (confirmation) seeds."""

    mean: float
    stderr: float
    n: int
    dof: float
    p_value: float
    """One-sided: the chance of a mean gain this large if the arm truly gained nothing."""
    low: float
    high: float
    """The two-sided ``INTERVAL_LEVEL`` t interval of the gain."""
    lower_bound: float
    """The one-sided (1 − ``CONFIRM_LEVEL``) lower confidence bound: the test confirms exactly
    when it is above zero (so it can, with p between 0.025 and 0.05, while the two-sided 95%
    interval still touches zero)."""
    level: float
    confirmed: bool


def confirm_gain(differences: np.ndarray, level: float = CONFIRM_LEVEL) -> Confirmation:
    """Test one arm's per-seed paired gains (fresh seeds) one-sided with a t(R − 1) quantile."""
    d = np.asarray(differences, dtype=np.float64).ravel()
    if d.size < 2:
        raise ValueError(f"a confirmation needs at least 2 seeds, got {d.size}")
    mean, se = (float(v) for v in paired_mean_and_se(d))
    dof = d.size - 1
    p = float(one_sided_p(mean, se, dof))
    half = float(stats.t.ppf(0.5 + INTERVAL_LEVEL / 2, dof)) * se
    bound = mean - float(stats.t.ppf(1 - level, dof)) * se
    return Confirmation(mean, se, int(d.size), dof, p, mean - half, mean + half, bound, level, bool(p < level))


def confirm_gain_over_seeds_and_images(per_image: np.ndarray, level: float = CONFIRM_LEVEL) -> Confirmation:
    """Test one arm's paired gain from its per-seed, per-image differences (R fresh seeds × n
    confirmation images: arm minus full source, e.g. of correctness), one-sided.

    Fresh seeds measure training noise only; the confirmation images are a sample of the target
    distribution too, and a removal's gain particular to them is noise for the question "does the
    pruned source do better on this target?". Two-way random effects: the variance of the mean gain
    is σ²_seed/R + σ²_image/n + σ²_residual/(Rn), estimated from the mean squares as
    (MS_seed + MS_image − MS_residual)/(Rn), never below the residual part alone, with
    Satterthwaite's degrees of freedom for that combination."""
    d = np.asarray(per_image, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] < 2 or d.shape[1] < 2:
        raise ValueError(f"a confirmation needs at least 2 seeds × 2 images of differences, got shape {d.shape}")
    seeds, images = d.shape
    by_seed, by_image, mean = d.mean(axis=1), d.mean(axis=0), float(d.mean())
    ms_seed = images * float(by_seed.var(ddof=1))
    ms_image = seeds * float(by_image.var(ddof=1))
    residual = d - by_seed[:, None] - by_image[None, :] + mean
    ms_residual = float((residual**2).sum()) / ((seeds - 1) * (images - 1))
    cells = seeds * images
    variance = max(ms_seed + ms_image - ms_residual, ms_residual) / cells
    se = float(np.sqrt(variance))
    terms = [(ms_seed, seeds - 1), (ms_image, images - 1), (ms_residual, (seeds - 1) * (images - 1))]
    spread = sum(ms**2 / df for ms, df in terms)
    dof = float((variance * cells) ** 2 / spread) if spread > 0 else float(seeds - 1)
    p = float(one_sided_p(mean, se, dof))  # type: ignore[arg-type]
    half = float(stats.t.ppf(0.5 + INTERVAL_LEVEL / 2, dof)) * se
    bound = mean - float(stats.t.ppf(1 - level, dof)) * se
    return Confirmation(mean, se, seeds, dof, p, mean - half, mean + half, bound, level, bool(p < level))
