"""Leaked and misleading source examples of an example-level study (paper §4.3, Figure 7).

In a study whose units are single source examples (``design.unit: example``), a datamodel of one
target test image on the inclusion mask says which source images move its output. A source image
with a large *positive* coefficient is often a near-copy of the target image (a leak: the model
memorised it); one with a large *negative* coefficient is often mislabeled or misleading (it teaches
the wrong class for that look). Coefficients of different targets share one scale (the output kind),
so the pairs can be ranked over the whole target set: the strongest pairs anywhere come first, which
is where a reader should look. Numpy on (masks, outputs); the study is read only by ``study_leaks``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import InputError
from ..evaluate.lds import fitted_values
from ..study.results import StudyResults
from ..study.store import DATA_FILE

LEAK_ESTIMATORS = ("lasso", "ridge", "dim")
"""``lasso``: sparse datamodel per target with λ chosen on held-out models (paper Algorithm 2);
``ridge`` and ``dim``: the dense example-level estimators of ``transfer_influence.estimate``."""

PER_TARGET = 3
"""Source examples kept at each end per target image: the paper shows one or two per image; a few
more let a leak that is second behind another near-copy still be found."""

SIGNS = ("positive", "negative")


@dataclass(frozen=True)
class LeakPair:
    """One (target image, source example) pair and its datamodel coefficient."""

    sign: str
    """'positive' (candidate leak) or 'negative' (candidate mislabeled or misleading example)."""
    rank: int
    """Place among all pairs of the same sign over the whole target set, 1 = strongest."""
    target_id: str
    target_index: int
    """Column of the target image in the study's target test set (and in ``data.npz``)."""
    target_label: str
    source_id: str
    source_index: int
    """Mask column of the source example, its row in the study's source training set."""
    source_class: str
    coefficient: float


@dataclass(frozen=True)
class LeakRanking:
    """Every target's most positive and most negative source examples, ranked over all targets."""

    output_kind: str | None
    estimator: str
    num_models: int
    per_target: int
    positive: tuple[LeakPair, ...]
    """Largest coefficient first; only coefficients above zero."""
    negative: tuple[LeakPair, ...]
    """Most negative coefficient first; only coefficients below zero."""

    def pairs(self) -> tuple[LeakPair, ...]:
        return self.positive + self.negative

    def for_target(self, target_id: str, sign: str = "positive") -> tuple[LeakPair, ...]:
        """One target's pairs of one sign, strongest first."""
        return tuple(p for p in (self.positive if sign == "positive" else self.negative) if p.target_id == target_id)


def check_leak_estimator(name: str) -> str:
    if name not in LEAK_ESTIMATORS:
        raise InputError(f"unknown estimator {name!r} for leaks; choose one of {list(LEAK_ESTIMATORS)}")
    return name


def check_per_target(count: int) -> int:
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
        raise InputError(f"source examples per target must be a positive integer, got {count!r}")
    return int(count)


def example_coefficients(
    masks: np.ndarray,
    outputs: np.ndarray,
    estimator: str = "lasso",
    *,
    blocks: np.ndarray | None = None,
    seed: int = 0,
) -> np.ndarray:
    """L × n coefficients of every source example (mask column) on every target (output column).

    ``lasso`` keeps the coefficients at each target's held-out-chosen λ: most are exactly zero, so
    a non-zero one is a selected source example rather than noise spread over all of them.
    """
    check_leak_estimator(estimator)
    return np.asarray(fitted_values(estimator, masks, outputs, blocks, seed), dtype=np.float64)


def worst_pair_score(coefficients: np.ndarray) -> np.ndarray:
    """Each source example's most negative coefficient on any single target (rows of an L × n
    matrix): how strongly it misleads the one image it hurts most, the order in which the negative
    pairs of ``rank_leak_pairs`` name their source examples first."""
    return np.asarray(coefficients, dtype=np.float64).min(axis=1)


def rank_leak_pairs(
    coefficients: np.ndarray,
    source_ids: Sequence[str],
    source_labels: np.ndarray,
    source_class_names: Sequence[str],
    target_ids: Sequence[str],
    target_labels: np.ndarray,
    target_class_names: Sequence[str],
    per_target: int = PER_TARGET,
    *,
    output_kind: str | None = None,
    estimator: str = "lasso",
    num_models: int = 0,
) -> LeakRanking:
    """Each target's ``per_target`` most positive and most negative source examples, then all
    pairs of one sign ranked by coefficient over the whole target set.

    A zero coefficient is no evidence either way (LASSO leaves most at zero), so only strictly
    positive or negative ones are listed; a target may therefore contribute fewer pairs.
    """
    per_target = check_per_target(per_target)
    coefficients = np.asarray(coefficients, dtype=np.float64)
    num_sources, num_targets = coefficients.shape
    if len(source_ids) != num_sources or np.asarray(source_labels).shape != (num_sources,):
        raise InputError(f"{len(source_ids)} source ids and {np.asarray(source_labels).size} labels for {num_sources} coefficient rows")
    if len(target_ids) != num_targets or np.asarray(target_labels).shape != (num_targets,):
        raise InputError(f"{len(target_ids)} target ids and {np.asarray(target_labels).size} labels for {num_targets} coefficient columns")
    count = min(per_target, num_sources)
    ends = {}
    for sign, signed in (("positive", coefficients), ("negative", -coefficients)):
        # Per target (column), the rows of its ``count`` largest signed coefficients.
        rows = np.argsort(-signed, axis=0, kind="stable")[:count]
        cols = np.broadcast_to(np.arange(num_targets), rows.shape)
        values = signed[rows, cols].ravel()
        keep = values > 0
        rows, cols, values = rows.ravel()[keep], cols.ravel()[keep], values[keep]
        order = np.lexsort((rows, cols, -values))  # strongest first; ties by target, then source
        ends[sign] = tuple(
            LeakPair(
                sign=sign,
                rank=rank,
                target_id=str(target_ids[j]),
                target_index=int(j),
                target_label=str(target_class_names[int(target_labels[j])]),
                source_id=str(source_ids[k]),
                source_index=int(k),
                source_class=str(source_class_names[int(source_labels[k])]),
                coefficient=float(coefficients[k, j]),
            )
            for rank, (k, j) in enumerate(zip(rows[order], cols[order]), start=1)
        )
    return LeakRanking(
        output_kind=output_kind,
        estimator=estimator,
        num_models=num_models,
        per_target=per_target,
        positive=ends["positive"],
        negative=ends["negative"],
    )


def require_example_units(results: StudyResults) -> None:
    """Leaks pair target images with single source examples: a class-level study has none."""
    if results.unit_kind != "example":
        raise InputError(
            f"{results.path} is a class-level study (design.unit: class): its units are whole source classes, while "
            "`leaks` pairs target images with single source examples. Run a study with design.unit: example "
            "for leaks, or use `transfer-influence explain` for the most negative source classes of an image"
        )


def load_source_labels(study_dir: Path) -> np.ndarray:
    """Class index of every source training example, in mask-column order (the study's data views)."""
    with np.load(Path(study_dir) / DATA_FILE, allow_pickle=False) as archive:
        return archive["source_train__labels"].astype(np.int64)


def study_coefficients(results: StudyResults, kind: str, estimator: str = "lasso", seed: int = 0) -> np.ndarray:
    """L × n coefficients of an example-level study's source examples on its target images."""
    require_example_units(results)
    check_leak_estimator(estimator)
    return example_coefficients(results.masks, results.outputs(kind), estimator, blocks=results.blocks, seed=seed)


def study_leaks(
    results: StudyResults,
    kind: str,
    estimator: str = "lasso",
    per_target: int = PER_TARGET,
    seed: int = 0,
    coefficients: np.ndarray | None = None,
) -> LeakRanking:
    """Leak candidates of an example-level study's target images on output ``kind`` (from
    ``coefficients`` when the caller has them, else fitted here)."""
    require_example_units(results)
    check_leak_estimator(estimator)
    check_per_target(per_target)
    if coefficients is None:
        coefficients = study_coefficients(results, kind, estimator, seed)
    return rank_leak_pairs(
        coefficients,
        results.unit_names,
        load_source_labels(results.path),
        results.source_class_names,
        tuple(str(t) for t in results.target_ids),
        results.target_labels,
        results.target_class_names,
        per_target,
        output_kind=kind,
        estimator=estimator,
        num_models=results.num_models,
    )
