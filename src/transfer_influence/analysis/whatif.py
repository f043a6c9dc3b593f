"""What-if predictions: target accuracy of the full source minus a set of classes, before retraining.

The study's linear datamodel (ridge on the inclusion mask, block fixed effects) gives each class's
effect on the accuracy of a model trained on s = α·K classes, *relative to the average class*:
fixed-size subsets never vary the number of classes, so the level — what one more average class
adds — is not identified by the subset models alone. The all-source baseline supplies it: the
subset models' mean accuracy (s classes) and the all-source models' accuracy (K classes) give the
average effect of one class, c = (acc_full − acc_subsets)/(K − s), by linear interpolation. A
class's own effect is measured where it is one of s classes; in a source of K − |R| classes it is a
smaller share of the training data, so by default (``scaling="dilution"``) its effect is scaled by
d = s/(K − |R|) (``scaling="none"``: d = 1). Then

    predicted(full − R) = acc_full − Σ_{k∈R} (d·β_k + c)
                        = (1 − q)·acc_full + q·acc_subsets − d·Σ_{k∈R} β_k,   q = |R|/(K − s),

with a standard error from the coefficients' full covariance (``estimate.datamodel_contrasts``) and
the sampling error of the two means. The part that needs no interpolation is the *differential*
−Σ_{k∈R} β_k: removing R rather than |R| average classes, in sources of s classes. The prediction
extrapolates: the coefficients were measured within sources of s classes and are applied to a
source of K − |R| classes, where a class's marginal effect may differ; the dilution scaling is a
model of that, which retraining (the counterfactual sweep) checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats

from ..errors import InputError
from ..estimate import datamodel_contrasts, group_means
from ..study.design import design_subset_size
from ..study.results import StudyResults
from ..study.store import StudyStore

ACCURACY_KIND = "correct"


@dataclass(frozen=True)
class WhatIf:
    """Predicted accuracy of the full source without ``removed``, overall and per target class."""

    removed: tuple[str, ...]
    columns: tuple[str, ...]
    """'all targets', then each target class."""
    full_accuracy: np.ndarray
    subset_accuracy: np.ndarray
    differential: np.ndarray
    """−Σ_{k∈R} β_k: the change from removing these classes rather than as many average ones."""
    differential_stderr: np.ndarray
    predicted: np.ndarray
    predicted_stderr: np.ndarray
    dof: float
    subset_size: int
    num_classes: int
    scaling: str
    """'dilution': class effects scaled by s/(K − |R|) in the full source; 'none': unscaled."""

    def critical_value(self, level: float = 0.95) -> float:
        return float(stats.t.ppf(0.5 + level / 2, max(self.dof, 1.0)))

    def interval(self, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        half = self.critical_value(level) * self.predicted_stderr
        return self.predicted - half, self.predicted + half

    @property
    def extrapolation(self) -> str:
        return (
            f"the study measured class effects within sources of {self.subset_size} of {self.num_classes} "
            f"classes; this predicts a source of {self.num_classes - len(self.removed)} classes by linear "
            "interpolation between the subset models and the all-source baseline"
            + (f", with class effects diluted by {self.subset_size}/{self.num_classes - len(self.removed)}"
               if self.scaling == "dilution" else ", with class effects unscaled")
            + ", so it extrapolates outside what the study measured"
        )


SCALINGS = ("dilution", "none")


def what_if_removed(
    results: StudyResults, remove: Sequence[str], ridge: float | None = None, scaling: str = "dilution"
) -> WhatIf:
    """Predict the full source's target accuracy without the classes named in ``remove``."""
    if scaling not in SCALINGS:
        raise InputError(f"unknown scaling {scaling!r}; choose one of {', '.join(SCALINGS)}")
    removed = _check_removal(results, remove)
    full, full_var = _all_source_accuracy(results)
    y = _accuracy_columns(results, np.asarray(results.outputs(ACCURACY_KIND), dtype=np.float64))
    m, num_classes = results.masks.shape
    contrast = np.zeros((1, num_classes))
    contrast[0, [results.class_names.index(c) for c in removed]] = -1.0
    values, errors, dof = datamodel_contrasts(results.masks, y, contrast, ridge=ridge, blocks=results.blocks)
    size = design_subset_size(results.config.design.kind, num_classes, results.config.design.alpha)
    q = len(removed) / (num_classes - size)
    d = size / (num_classes - len(removed)) if scaling == "dilution" else 1.0
    subsets = y.mean(axis=0)
    subsets_var = y.var(axis=0, ddof=1) / m
    predicted = (1 - q) * full + q * subsets + d * values[0]
    predicted_se = np.sqrt((1 - q) ** 2 * full_var + q**2 * subsets_var + (d * errors[0]) ** 2)
    return WhatIf(
        removed=removed,
        columns=("all targets",) + tuple(results.target_class_names),
        full_accuracy=full,
        subset_accuracy=subsets,
        differential=values[0],
        differential_stderr=errors[0],
        predicted=predicted,
        predicted_stderr=predicted_se,
        dof=dof,
        subset_size=size,
        num_classes=num_classes,
        scaling=scaling,
    )


def _check_removal(results: StudyResults, remove: Sequence[str]) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(str(c) for c in remove))
    if not names:
        raise InputError("name at least one source class to remove (--remove A,B,C)")
    unknown = [c for c in names if c not in results.class_names]
    if unknown:
        raise InputError(
            f"unknown source classes {unknown}; the study's classes include {list(results.class_names[:8])} "
            f"(all {len(results.class_names)} in STUDY/study.json)"
        )
    if len(names) >= len(results.class_names):
        raise InputError(f"removing {len(names)} of {len(results.class_names)} classes leaves no source")
    if results.num_models < 3:
        raise InputError(f"{results.path} has {results.num_models} finished models; a what-if needs at least 3")
    return names


def _accuracy_columns(results: StudyResults, correct: np.ndarray) -> np.ndarray:
    """(m × 1+C): accuracy over all targets, then over each target class's examples."""
    per_class = group_means(correct, results.target_labels, len(results.target_class_names))
    return np.column_stack([correct.mean(axis=1), per_class])


def _all_source_accuracy(results: StudyResults) -> tuple[np.ndarray, np.ndarray]:
    """Mean accuracy of the all-source baseline runs per column, and the variance of that mean."""
    store = StudyStore.open(results.path)
    runs = sorted(r for r in store.finished_run_ids() if r.startswith("all_source-"))
    if not runs:
        raise InputError(
            f"{results.path} has no finished all-source baseline run, which anchors the prediction; "
            "run the study with baselines.repeats ≥ 1 (2 or more give an error for it)"
        )
    rows = np.stack([
        _accuracy_columns(results, store.read_run(r)[1][ACCURACY_KIND][None, :].astype(np.float64))[0] for r in runs
    ])
    variance = rows.var(axis=0, ddof=1) / len(runs) if len(runs) > 1 else np.zeros(rows.shape[1])
    return rows.mean(axis=0), variance
