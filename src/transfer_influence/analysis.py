"""Rankings built on the estimator: overall, per target class, per example.

Influence is linear in the outputs, so the influence of a class on the *mean* output over a group
of targets equals the mean of its per-example influences. Aggregating outputs first (one m×n by
n×G product) and estimating on the m×G result gives the same values with exact standard errors
for the group, which per-example standard errors cannot give (the examples' noise is correlated).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .datamodels import datamodel_influence
from .estimators import ClassInfluence, class_influence
from .results import StudyResults

# Glyph classes that look like each digit: used to check that the demo's rankings find the obvious.
DIGIT_LOOKALIKES: dict[str, tuple[str, ...]] = {
    "0": ("0", "O", "o", "D", "Q"),
    "1": ("1", "l", "I", "i"),
    "2": ("2", "Z", "z"),
    "3": ("3",),
    "4": ("4",),
    "5": ("5", "S", "s"),
    "6": ("6", "b", "G"),
    "7": ("7",),
    "8": ("8", "B"),
    "9": ("9", "g", "q"),
}


def group_means(outputs: np.ndarray, groups: np.ndarray, num_groups: int) -> np.ndarray:
    """(m × n) outputs → (m × G) mean output per group of targets, as one matrix product."""
    counts = np.bincount(groups, minlength=num_groups).astype(np.float64)
    if (counts == 0).any():
        empty = np.flatnonzero(counts == 0).tolist()
        raise ValueError(f"target groups {empty} have no examples")
    averaging = np.zeros((groups.size, num_groups), dtype=np.float32)
    averaging[np.arange(groups.size), groups] = (1.0 / counts[groups]).astype(np.float32)
    return np.asarray(outputs, dtype=np.float32) @ averaging


ESTIMATOR_NAMES = {"dim": "difference of means", "ridge": "ridge regression on the mask"}
"""``dim``: Algorithm 1 (with a balanced design, block effects cancel by themselves); ``ridge``:
regression on the inclusion mask, with a fixed effect per block when blocks are given."""


def estimate(
    estimator: str,
    masks: np.ndarray,
    outputs: np.ndarray,
    class_names: Sequence[str] | None = None,
    target_ids: Sequence[str] | None = None,
    output_kind: str | None = None,
    blocks: np.ndarray | None = None,
) -> ClassInfluence:
    """The one dispatch from an estimator's name to its function, for every caller."""
    if estimator == "dim":
        return class_influence(masks, outputs, class_names, target_ids, output_kind)
    if estimator == "ridge":
        return datamodel_influence(masks, outputs, class_names, target_ids, output_kind, blocks=blocks)
    raise ValueError(f"unknown estimator {estimator!r}; choose one of {sorted(ESTIMATOR_NAMES)}")


def _estimate(
    results: StudyResults, outputs: np.ndarray, target_ids: Sequence[str], kind: str, estimator: str
) -> ClassInfluence:
    return estimate(estimator, results.masks, outputs, results.class_names, target_ids, kind, results.blocks)


def overall_influence(results: StudyResults, kind: str = "p_true", estimator: str = "dim") -> ClassInfluence:
    """Each class's influence on the mean output over all target examples (paper Figure 1)."""
    mean = np.asarray(results.outputs(kind), dtype=np.float64).mean(axis=1, keepdims=True)
    return _estimate(results, mean, ("all targets",), kind, estimator)


def per_target_class_influence(results: StudyResults, kind: str = "p_true", estimator: str = "dim") -> ClassInfluence:
    """K × C: influence on the mean output over the examples of each target class (Figure 3)."""
    aggregated = group_means(results.outputs(kind), results.target_labels, len(results.target_class_names))
    return _estimate(results, aggregated, results.target_class_names, kind, estimator)


def example_influence(results: StudyResults, kind: str = "p_true", estimator: str = "dim") -> ClassInfluence:
    """K × n: influence on every target example (Algorithm 1 as written)."""
    return _estimate(results, results.outputs(kind), results.target_ids, kind, estimator)


@dataclass(frozen=True)
class RankedClass:
    name: str
    index: int
    influence: float
    stderr: float


def ranked(influence: ClassInfluence, column: int = 0) -> list[RankedClass]:
    """Classes from most positive to most negative influence on one target column."""
    values = influence.values[:, column]
    order = np.argsort(-values, kind="stable")
    return [
        RankedClass(influence.class_names[k], int(k), float(values[k]), float(influence.stderr[k, column]))
        for k in order
    ]


def top_and_bottom(influence: ClassInfluence, column: int, k: int) -> tuple[list[RankedClass], list[RankedClass]]:
    order = ranked(influence, column)
    k = min(k, len(order) // 2)
    return order[:k], order[-k:][::-1]


@dataclass(frozen=True)
class LookalikeCheck:
    """For each digit: does its top-k list hold a glyph that looks like it?"""

    top_k: int
    hits: dict[str, list[str]]
    checked: list[str]

    @property
    def num_hits(self) -> int:
        return sum(1 for d in self.checked if self.hits[d])


def lookalike_check(per_class: ClassInfluence, top_k: int = 3) -> LookalikeCheck | None:
    """None unless the targets are digits and the source has glyph classes to compare with."""
    checked = [d for d in per_class.target_ids if d in DIGIT_LOOKALIKES]
    if not checked or not any(g in per_class.class_names for d in checked for g in DIGIT_LOOKALIKES[d]):
        return None
    hits: dict[str, list[str]] = {}
    for digit in checked:
        column = per_class.target_ids.index(digit)
        best, _ = top_and_bottom(per_class, column, top_k)
        hits[digit] = [c.name for c in best if c.name in DIGIT_LOOKALIKES[digit]]
    return LookalikeCheck(top_k, hits, checked)


@dataclass(frozen=True)
class BaselineSummary:
    """Target accuracy of each baseline backbone (mean, std, count) beside the subset models'."""

    rows: dict[str, tuple[float, float, int]]


def baseline_summary(results: StudyResults) -> BaselineSummary:
    rows: dict[str, tuple[float, float, int]] = {}
    labels = {
        "random_init": "random-init backbone + same head",
        "all_source": "backbone trained on all source classes",
    }
    for kind, label in labels.items():
        acc = results.baselines.get(kind, np.zeros(0))
        if acc.size:
            rows[label] = (float(acc.mean()), float(acc.std(ddof=1)) if acc.size > 1 else 0.0, int(acc.size))
    if results.num_models:
        acc = results.target_accuracy
        alpha = results.config.design.alpha
        rows[f"backbones on random {alpha:g} subsets (the study's models)"] = (
            float(acc.mean()),
            float(acc.std(ddof=1)) if acc.size > 1 else 0.0,
            int(acc.size),
        )
    return BaselineSummary(rows)
