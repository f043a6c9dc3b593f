"""Explaining a target model's mistake by the source classes that push it (paper §4.2, Figure 6 left).

For one target test image, the source classes with the most negative influence are the ones whose
presence lowers the model's output on it: the first suspects when it is mispredicted. The study
stores four outputs per (model, image) — not the predicted label — so beside each suspect this
module reports what the study itself measured: mean ``p_true`` and accuracy over the models that
held the class against those that lacked it. Those are raw conditional means (the other classes of
each subset vary too); the influence and its interval are the adjusted estimate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import unknown_name_error
from ..estimate import InfluenceEstimate, estimate
from ..study.results import StudyResults
from .context import StudyContext
from .projection import check_top


@dataclass(frozen=True)
class Suspect:
    """A source class that lowers a target image's output, with the models' behaviour with and without it."""

    name: str
    index: int
    influence: float
    stderr: float
    ci95_low: float
    ci95_high: float
    models_with: int
    models_without: int
    p_true_with: float
    p_true_without: float
    accuracy_with: float
    accuracy_without: float


@dataclass(frozen=True)
class Explanation:
    """One target test image: how often the study's models get it right, and its most negative classes."""

    target_id: str
    index: int
    true_label: str
    mean_p_true: float
    accuracy: float
    """Share of the study's models that predict the true label."""
    output_kind: str | None
    estimator: str
    num_models: int
    suspects: tuple[Suspect, ...]
    """Most negative influence first."""


def find_target(results: StudyResults, target_id: str) -> int:
    """Column of a target test image by its id, or an ``InputError`` showing what ids look like."""
    matches = np.flatnonzero(results.target_ids == target_id)
    if matches.size == 0:
        raise unknown_name_error("target id", target_id, [str(i) for i in results.target_ids], "target test ids",
                                 "the study's data.npz, key target_test__ids")
    return int(matches[0])


def most_mispredicted(results: StudyResults, count: int) -> np.ndarray:
    """The ``count`` target images the study's models get right least often (ties: lower mean p_true first)."""
    check_top(count)
    accuracy = np.asarray(results.outputs("correct"), dtype=np.float64).mean(axis=0)
    p_true = np.asarray(results.outputs("p_true"), dtype=np.float64).mean(axis=0)
    order = np.lexsort((p_true, accuracy))
    return order[: min(count, order.size)]


def _column_influence(results: StudyResults, columns: np.ndarray, kind: str, estimator: str) -> InfluenceEstimate:
    """Influences on a few target columns only: both estimators treat columns independently."""
    outputs = np.asarray(results.outputs(kind))[:, columns]
    ids = [str(results.target_ids[j]) for j in columns]
    return estimate(estimator, results.masks, outputs, results.class_names, ids, kind, results.blocks)


def _conditional_mean(values: np.ndarray, held: np.ndarray) -> tuple[float, float]:
    """Mean over models that held a class and over those that lacked it (nan where none did)."""
    inside = values[held]
    outside = values[~held]
    return (
        float(inside.mean()) if inside.size else float("nan"),
        float(outside.mean()) if outside.size else float("nan"),
    )


def explain_targets(
    results: StudyResults, columns: Sequence[int], kind: str = "p_true", estimator: str = "dim", top: int = 5
) -> list[Explanation]:
    """For each target column, its ``top`` most negative source classes (lowest influence first; only
    classes whose influence is below zero, so an image nothing lowers lists none)."""
    check_top(top)
    columns = np.asarray(columns, dtype=np.int64)
    influence = _column_influence(results, columns, kind, estimator)
    low, high = influence.interval(0.95)
    p_true = np.asarray(results.outputs("p_true"), dtype=np.float64)[:, columns]
    correct = np.asarray(results.outputs("correct"), dtype=np.float64)[:, columns]
    explanations = []
    for position, j in enumerate(columns):
        values = influence.values[:, position]
        suspects = []
        for k in np.argsort(values, kind="stable")[:top]:
            if values[k] >= 0:
                break  # only classes that lower the output are suspects
            held = results.masks[:, k].astype(bool)
            p_with, p_without = _conditional_mean(p_true[:, position], held)
            acc_with, acc_without = _conditional_mean(correct[:, position], held)
            suspects.append(
                Suspect(
                    name=results.class_names[k],
                    index=int(k),
                    influence=float(values[k]),
                    stderr=float(influence.stderr[k, position]),
                    ci95_low=float(low[k, position]),
                    ci95_high=float(high[k, position]),
                    models_with=int(held.sum()),
                    models_without=int((~held).sum()),
                    p_true_with=p_with,
                    p_true_without=p_without,
                    accuracy_with=acc_with,
                    accuracy_without=acc_without,
                )
            )
        explanations.append(
            Explanation(
                target_id=str(results.target_ids[j]),
                index=int(j),
                true_label=results.target_class_names[int(results.target_labels[j])],
                mean_p_true=float(p_true[:, position].mean()),
                accuracy=float(correct[:, position].mean()),
                output_kind=kind,
                estimator=estimator,
                num_models=results.num_models,
                suspects=tuple(suspects),
            )
        )
    return explanations


@dataclass(frozen=True)
class StudyExplanations:
    """What ``explain`` found: the images it was asked about (none: the most often mispredicted)
    and each one's most negative source classes."""

    images: tuple[str, ...]
    """The target ids asked about; empty when the study's most mispredicted images were chosen."""
    explanations: list[Explanation]


def explain_study(context: StudyContext, images: Sequence[str] = (), count: int = 5, top: int = 5) -> StudyExplanations:
    """``explain`` on a class-level study: the ``top`` most negative source classes of each target
    image in ``images`` (by id) or, when none is named, of the ``count`` most often mispredicted
    ones. Every id is looked up before anything is estimated."""
    check_top(top)
    context.require_units("class", "explain")
    results = context.results
    columns = [find_target(results, image) for image in images] if images else list(most_mispredicted(results, count))
    return StudyExplanations(tuple(images), explain_targets(results, columns, context.kind, context.estimator, top))
