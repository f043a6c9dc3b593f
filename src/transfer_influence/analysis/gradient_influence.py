"""The ``influence --estimator trak`` numbers of a study: TRAK class influences from its gradient
models, overall, per target class and per target example, in the shape ``influence`` writes.

The gradients come in as arrays (``GradientInputs``; ``pipeline.gradients`` computes and stores
them): this layer never trains. The target columns are the study's primary target test set in the
order of its results, so the tables line up with the datamodels' (``dim``, ``ridge``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..estimate import InfluenceEstimate, ModelGradients, trak_influence
from ..estimate.trak import Aggregation
from ..evaluate.fdr import significant_classes
from .rankings import StudyInfluence

TRAK_OUTPUT = "margin"
"""The output TRAK scores explain: the true class's margin log p / (1 − p) of the transferred model."""


@dataclass(frozen=True)
class GradientInputs:
    """What TRAK needs of a study: each gradient model's projected gradients, the source examples'
    classes and the target test set's ids, labels and class names."""

    models: tuple[ModelGradients, ...]
    source_labels: np.ndarray
    class_names: tuple[str, ...]
    target_ids: tuple[str, ...]
    target_labels: np.ndarray
    target_class_names: tuple[str, ...]


@dataclass(frozen=True)
class TrakSettings:
    """The estimator's knobs (the gradients' own, M and d, are the pipeline's)."""

    ridge: float = 1e-3
    aggregation: Aggregation = "sum"


def _groups(labels: np.ndarray, num_groups: int) -> np.ndarray:
    """n × G: each target class's examples weighted 1 / (its size), so a column is a class mean."""
    groups = np.zeros((labels.size, num_groups))
    groups[np.arange(labels.size), labels] = 1.0
    return groups / np.maximum(groups.sum(axis=0, keepdims=True), 1.0)


def _trak(inputs: GradientInputs, settings: TrakSettings, ids: tuple[str, ...], groups: np.ndarray | None) -> InfluenceEstimate:
    return trak_influence(
        inputs.models, inputs.source_labels, inputs.class_names, ids, settings.ridge, settings.aggregation,
        output_kind=TRAK_OUTPUT, target_groups=groups,
    )


def trak_study_influence(inputs: GradientInputs, settings: TrakSettings, fdr: float = 0.1) -> StudyInfluence:
    """Overall (mean over target examples), per target class (each class's mean) and per example
    TRAK influences, and the classes significant at ``fdr`` by their spread over gradient models."""
    started = time.perf_counter()
    n = len(inputs.target_ids)
    overall = _trak(inputs, settings, ("all targets",), np.full((n, 1), 1.0 / n))
    per_class = _trak(inputs, settings, inputs.target_class_names,
                      _groups(inputs.target_labels, len(inputs.target_class_names)))
    examples = _trak(inputs, settings, inputs.target_ids, None)
    seconds = time.perf_counter() - started
    return StudyInfluence(overall, per_class, examples, seconds, fdr, tuple(significant_classes(overall, 0, fdr)))
