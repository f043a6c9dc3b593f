"""One-sided Benjamini–Hochberg lists against simulated truth: false discoveries stay at or below
the requested rate on average, and the negative list finds more of the classes that truly hurt
than a two-sided list filtered by sign did."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest

from transfer_influence.errors import InputError
from transfer_influence.estimate import class_influence
from transfer_influence.evaluate.fdr import significant_classes
from transfer_influence.study.design import iid_mask

K, MODELS, STUDIES, Q = 60, 200, 300, 0.1
EFFECT = 0.012
BALANCED = np.zeros(K)
BALANCED[:8], BALANCED[8:16] = -EFFECT, EFFECT
"""Effects that sum to zero: a null class's difference-of-means estimand β_k − Σ_{l≠k} β_l/(K−1) is
exactly 0, so both lists have a clean truth."""
HARM_ONLY = np.zeros(K)
HARM_ONLY[:8] = -EFFECT
"""A few harmful classes among neutral ones (as on the planted-harm demo): the nulls' estimand is
then slightly positive (+8·EFFECT/(K−1)), inside the negative list's null hypothesis (≥ 0)."""


@lru_cache(maxsize=None)
def _lists(scenario: str) -> list[tuple[set[int], set[int], set[int]]]:
    """Per simulated study: (default list's negatives, its positives, two-sided list's negatives)."""
    truth = {"balanced": BALANCED, "harm only": HARM_ONLY}[scenario]
    found = []
    for study in range(STUDIES):
        rng = np.random.default_rng(study)
        masks = np.array([iid_mask(study, i, K, 0.5) for i in range(MODELS)])
        y = (masks @ truth)[:, None] + rng.normal(0, 0.03, size=(MODELS, 1))
        infl = class_influence(masks, y)
        by_sign = significant_classes(infl, 0, Q)
        two_sided = significant_classes(infl, 0, Q, alternative="two-sided")
        found.append((
            {int(n) for n, v, _ in by_sign if v < 0},  # what analysis/counterfactual.py keeps
            {int(n) for n, v, _ in by_sign if v > 0},
            {int(n) for n, v, _ in two_sided if v < 0},
        ))
    return found


def _mean_fdp(chosen: list[set[int]], true: set[int]) -> tuple[float, float]:
    fdp = np.array([len(c - true) / max(len(c), 1) for c in chosen])
    return float(fdp.mean()), float(fdp.std(ddof=1) / np.sqrt(fdp.size))


@pytest.mark.parametrize("scenario, index, true", [
    ("balanced", 0, set(range(8))), ("balanced", 1, set(range(8, 16))), ("harm only", 0, set(range(8))),
])
def test_one_sided_lists_keep_the_false_discovery_rate(scenario: str, index: int, true: set[int]) -> None:
    mean, se = _mean_fdp([lists[index] for lists in _lists(scenario)], true)
    # BH at q controls the FDR at π0·q ≤ q; within two standard errors of the simulation
    assert mean <= Q + 2 * se, (scenario, index, mean, se)
    assert mean > 0.01  # not vacuous: the lists do make false discoveries at about the rate allowed


def test_one_sided_negatives_find_more_of_the_true_negatives_than_two_sided() -> None:
    one = np.mean([len(lists[0] & set(range(8))) for lists in _lists("harm only")])
    two = np.mean([len(lists[2] & set(range(8))) for lists in _lists("harm only")])
    assert one > two + 0.3, (one, two)


def test_sides_and_rates_are_checked() -> None:
    masks = np.array([iid_mask(0, i, 6, 0.5) for i in range(20)])
    infl = class_influence(masks, np.random.default_rng(0).normal(size=(20, 1)))
    with pytest.raises(InputError, match="unknown alternative"):
        significant_classes(infl, 0, 0.1, alternative="negative")
    with pytest.raises(InputError, match="fdr must lie"):
        significant_classes(infl, 0, 1.5)
    high = significant_classes(infl, 0, 0.9, alternative="less")
    assert all(v < 0 for _, v, _ in high)  # a one-sided list never admits the other sign
