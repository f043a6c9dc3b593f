"""Rankings of source classes: overall, per target class and per target example.

Influence is linear in the outputs, so the influence of a class on the *mean* output over a group
of targets equals the mean of its per-example influences. Aggregating outputs first (one m×n by
n×G product) and estimating on the m×G result gives the same values with exact standard errors
for the group, which per-example standard errors cannot give (the examples' noise is correlated).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from ..estimate import InfluenceEstimate, estimate, group_means
from ..evaluate.fdr import significant_classes
from ..study.results import StudyResults
from .context import StudyContext


def _estimate(
    results: StudyResults, outputs: np.ndarray, target_ids: Sequence[str], kind: str, estimator: str
) -> InfluenceEstimate:
    found = estimate(estimator, results.masks, outputs, results.class_names, target_ids, kind, results.blocks)
    return found if results.unit_kind == "class" else replace(found, unit_kind="example")


def overall_influence(results: StudyResults, kind: str = "p_true", estimator: str = "dim") -> InfluenceEstimate:
    """Each class's influence on the mean output over all target examples (paper Figure 1)."""
    mean = np.asarray(results.outputs(kind), dtype=np.float64).mean(axis=1, keepdims=True)
    return _estimate(results, mean, ("all targets",), kind, estimator)


def per_target_class_influence(results: StudyResults, kind: str = "p_true", estimator: str = "dim") -> InfluenceEstimate:
    """K × C: influence on the mean output over the examples of each target class (Figure 3)."""
    aggregated = group_means(results.outputs(kind), results.target_labels, len(results.target_class_names))
    return _estimate(results, aggregated, results.target_class_names, kind, estimator)


def example_influence(results: StudyResults, kind: str = "p_true", estimator: str = "dim") -> InfluenceEstimate:
    """K × n: influence on every target example (Algorithm 1 as written)."""
    return _estimate(results, results.outputs(kind), results.target_ids, kind, estimator)


@dataclass(frozen=True)
class RankedClass:
    name: str
    index: int
    influence: float
    stderr: float


def ranked(influence: InfluenceEstimate, column: int = 0) -> list[RankedClass]:
    """Classes from most positive to most negative influence on one target column."""
    values = influence.values[:, column]
    order = np.argsort(-values, kind="stable")
    return [
        RankedClass(influence.unit_names[k], int(k), float(values[k]), float(influence.stderr[k, column]))
        for k in order
    ]


def top_and_bottom(influence: InfluenceEstimate, column: int, k: int) -> tuple[list[RankedClass], list[RankedClass]]:
    order = ranked(influence, column)
    k = min(k, len(order) // 2)
    return order[:k], order[-k:][::-1]


@dataclass(frozen=True)
class StudyInfluence:
    """What ``influence`` reports for one study context: its three rankings, the estimate time and
    the units whose overall influence is non-zero at the false-discovery rate ``fdr``."""

    overall: InfluenceEstimate
    per_target_class: InfluenceEstimate
    examples: InfluenceEstimate
    seconds: float
    """Time of the three estimates (what the command reports, not the reading of the study)."""
    fdr: float
    significant: tuple[tuple[str, float, float], ...]
    """(name, influence, p-value) of the units in the one-sided Benjamini–Hochberg lists."""

    @property
    def suffix(self) -> str:
        """``<kind>_<estimator>``, the part of the table names that keeps choices apart."""
        return f"{self.overall.output_kind}_{self.overall.estimator}"


def study_influence(context: StudyContext, fdr: float = 0.1) -> StudyInfluence:
    """The ``influence`` command's numbers: overall, per target class and per target example, on the
    context's output kind and estimator, and the significant units at ``fdr``."""
    results = context.results
    started = time.perf_counter()
    overall = overall_influence(results, context.kind, context.estimator)
    per_class = per_target_class_influence(results, context.kind, context.estimator)
    examples = example_influence(results, context.kind, context.estimator)
    seconds = time.perf_counter() - started
    significant = tuple(significant_classes(overall, 0, fdr))
    return StudyInfluence(overall, per_class, examples, seconds, fdr, significant)
