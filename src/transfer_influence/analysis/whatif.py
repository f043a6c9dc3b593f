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

    predicted(full − R) = (1 − w)·acc_full + w·acc_subsets − d·Σ_{k∈R} β_k,

where w places a source of K − |R| classes between the subsets (s classes, w = 1) and the full
source (K classes, w = 0). Accuracy saturates as classes are added, so by default (``level="log"``)
accuracy is interpolated linearly in the *logarithm* of the number of classes,
w = log(K/(K − |R|)) / log(K/s): one class is worth 1/n of the gain per e-fold, the same 1/n the
dilution scaling gives a class's own effect. ``level="linear"`` interpolates in the number of
classes, w = |R|/(K − s) (every class worth the same c = (acc_full − acc_subsets)/(K − s)); on the
demo it overstates what removing classes costs the full source 2–3×.

The prediction has a standard error from the coefficients' full covariance (``estimate.datamodel_contrasts``) and
the sampling error of the two means. The part that needs no interpolation is the *differential*
−Σ_{k∈R} β_k: removing R rather than |R| average classes, in sources of s classes. The prediction
extrapolates: the coefficients were measured within sources of s classes and are applied to a
source of K − |R| classes, where a class's marginal effect may differ; the dilution scaling is a
model of that, which retraining (the counterfactual sweep) checks.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
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
    level: str = "log"
    """How accuracy is interpolated between s and K classes: 'log' (in log classes) or 'linear'."""

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
            f"{'log-' if self.level == 'log' else ''}linear interpolation between the subset models and the all-source baseline"
            + (f", with class effects diluted by {self.subset_size}/{self.num_classes - len(self.removed)}"
               if self.scaling == "dilution" else ", with class effects unscaled")
            + ", so it extrapolates outside what the study measured"
        )


SCALINGS = ("dilution", "none")
LEVELS = ("log", "linear")


def interpolation_weight(removed: np.ndarray | int, num_classes: int, subset_size: int, level: str) -> np.ndarray:
    """w for a source of K − |R| classes: 0 at the full source, 1 at the subsets' size s."""
    if level not in LEVELS:
        raise InputError(f"unknown level {level!r}; choose one of {', '.join(LEVELS)}")
    removed = np.asarray(removed, dtype=np.float64)
    if level == "linear":
        return removed / (num_classes - subset_size)
    return np.log(num_classes / (num_classes - removed)) / np.log(num_classes / subset_size)


def what_if_removed(
    results: StudyResults,
    remove: Sequence[str],
    ridge: float | None = None,
    scaling: str = "dilution",
    level: str = "log",
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
    q = float(interpolation_weight(len(removed), num_classes, size, level))
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
        level=level,
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


def _all_source_correct(results: StudyResults) -> np.ndarray:
    """``correct`` of every all-source baseline run (runs × target examples)."""
    store = StudyStore.open(results.path)
    runs = sorted(r for r in store.finished_run_ids() if r.startswith("all_source-"))
    if not runs:
        raise InputError(
            f"{results.path} has no finished all-source baseline run, which anchors the prediction; "
            "run the study with baselines.repeats ≥ 1 (2 or more give an error for it)"
        )
    return np.stack([store.read_run_output(r, ACCURACY_KIND).astype(np.float64) for r in runs])


def _mean_and_variance_of_mean(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    variance = rows.var(axis=0, ddof=1) / len(rows) if len(rows) > 1 else np.zeros(rows.shape[1])
    return rows.mean(axis=0), variance


def _all_source_accuracy(results: StudyResults) -> tuple[np.ndarray, np.ndarray]:
    """Mean accuracy of the all-source baseline runs per column, and the variance of that mean."""
    return _mean_and_variance_of_mean(_accuracy_columns(results, _all_source_correct(results)))


# ---- choosing how many classes to remove ----------------------------------------------------------
@dataclass(frozen=True)
class RemovalCurve:
    """Predicted accuracy (on chosen target examples) of the full source minus the first k classes
    of an order, for k = 0 … ``max_k``; the rule's k is the one predicted best."""

    order: tuple[int, ...]
    predicted: np.ndarray
    """Index k: the full source minus ``order[:k]`` (k = 0 is the all-source baseline itself)."""
    predicted_stderr: np.ndarray
    scaling: str

    @property
    def best_k(self) -> int:
        """0 when no removal is predicted to beat the full source."""
        return int(np.argmax(self.predicted))

    @property
    def predicted_gain(self) -> float:
        return float(self.predicted[self.best_k] - self.predicted[0])


def removal_curve(
    results: StudyResults,
    order: Sequence[int],
    columns: np.ndarray | None = None,
    scaling: str = "dilution",
    ridge: float | None = None,
    level: str = "log",
) -> RemovalCurve:
    """What-if predictions for removing the first 1, 2, … classes of ``order`` (e.g. most negative
    first), from one datamodel fit: the rule "pick k by the what-if prediction".

    ``columns`` restricts the accuracy to some target examples (a counterfactual's selection half,
    so that the k is not chosen on the images that score it). k stops at K − s, where the source is
    still as large as the study's subsets: beyond it the prediction would extrapolate below the
    smallest source the study measured."""
    if scaling not in SCALINGS:
        raise InputError(f"unknown scaling {scaling!r}; choose one of {', '.join(SCALINGS)}")
    m, num_classes = results.masks.shape
    size = design_subset_size(results.config.design.kind, num_classes, results.config.design.alpha)
    max_k = min(len(order), num_classes - size)
    correct = np.asarray(results.outputs(ACCURACY_KIND), dtype=np.float64)
    baseline = _all_source_correct(results)
    if columns is not None:
        correct, baseline = correct[:, columns], baseline[:, columns]
    y = correct.mean(axis=1, keepdims=True)
    full, full_var = _mean_and_variance_of_mean(baseline.mean(axis=1, keepdims=True))
    contrasts = -np.tril(np.ones((max_k, max_k)))  # row k−1 removes order[:k]
    weights = np.zeros((max_k, num_classes))
    weights[:, list(order[:max_k])] = contrasts
    values, errors, _ = datamodel_contrasts(results.masks, y, weights, ridge=ridge, blocks=results.blocks)
    ks = np.arange(1, max_k + 1)
    q = interpolation_weight(ks, num_classes, size, level)
    d = size / (num_classes - ks) if scaling == "dilution" else np.ones(max_k)
    subsets, subsets_var = y.mean(), y.var(ddof=1) / m
    predicted = (1 - q) * full[0] + q * subsets + d * values[:, 0]
    stderr = np.sqrt((1 - q) ** 2 * full_var[0] + q**2 * subsets_var + (d * errors[:, 0]) ** 2)
    return RemovalCurve(
        tuple(int(c) for c in order[:max_k]),
        np.concatenate([full, predicted]),
        np.concatenate([np.sqrt(full_var), stderr]),
        scaling,
    )


# ---- checked against a counterfactual sweep's retrains -------------------------------------------
COMPARED_SELECTIONS = ("top", "bottom", "significant", "whatif", "hand_picked")
"""Arms that remove one named set for every seed; ``random`` draws another set per seed, so no single
prediction stands for it, and ``full`` removes nothing."""


@dataclass(frozen=True)
class SweepArm:
    """One row of a sweep's ``summary.csv``: accuracy on the scoring half over the paired seeds."""

    selection: str
    k: int
    mean: float
    std: float
    n: int
    diff_vs_full: float | None
    diff_se: float | None
    beats_full_2se: bool | None


def read_sweep_summary(counterfactual_dir: str | Path) -> list[SweepArm]:
    """The rows of ``summary.csv`` as written by ``transfer-influence counterfactual`` (the full
    source has no difference, so its last three fields are None)."""
    path = Path(counterfactual_dir) / "summary.csv"
    if not path.is_file():
        raise InputError(
            f"no counterfactual results at {path}; run `transfer-influence counterfactual STUDY_DIR` first"
        )
    with open(path, newline="") as handle:
        return [
            SweepArm(
                selection=row["selection"],
                k=int(row["k"]),
                mean=float(row["mean"]),
                std=float(row["std"]),
                n=int(row["n"]),
                diff_vs_full=float(row["diff_vs_full"]) if row["diff_vs_full"] else None,
                diff_se=float(row["diff_se"]) if row["diff_se"] else None,
                beats_full_2se=(row["beats_full_2se"] == "True") if row["beats_full_2se"] else None,
            )
            for row in csv.DictReader(handle)
        ]


@dataclass(frozen=True)
class SweepPoint:
    """One removed set: the change in target accuracy the what-if predicts and the one retraining measured."""

    selection: str
    k: int
    removed: tuple[str, ...]
    measured: float
    """Arm mean − full-source mean, on the sweep's scoring half of the target."""
    measured_se: float | None
    """Standard error of the paired difference (None when the sweep had one seed)."""
    predicted: float
    """What-if accuracy − all-source baseline accuracy, over all target examples."""
    predicted_stderr: float


@dataclass(frozen=True)
class SweepComparison:
    """Predicted against measured change in accuracy over a sweep's non-random arms."""

    points: tuple[SweepPoint, ...]
    spearman: float
    """Rank correlation of predicted and measured changes (nan with fewer than 3 points or a constant side)."""
    mean_absolute_error: float
    scaling: str
    subset_size: int
    num_classes: int
    level: str = "log"


def compare_with_sweep(
    results: StudyResults, counterfactual_dir: str | Path, scaling: str = "dilution", level: str = "log"
) -> SweepComparison:
    """Predict every non-random arm of a finished counterfactual sweep with ``what_if_removed`` and
    set each beside what retraining measured: how far the datamodel's extrapolation to the full
    source can be trusted, on this study's own retrains."""
    counterfactual_dir = Path(counterfactual_dir)
    arms = read_sweep_summary(counterfactual_dir)
    full = next((a for a in arms if a.selection == "full"), None)
    if full is None:
        raise InputError(f"{counterfactual_dir / 'summary.csv'} has no full-source row; run the counterfactual again")
    removed_path = counterfactual_dir / "removed.json"
    if not removed_path.is_file():
        raise InputError(f"no {removed_path}; run `transfer-influence counterfactual STUDY_DIR` again to write it")
    removed_sets = {
        (entry["selection"], int(entry["k"])): tuple(entry["removed"])
        for entry in json.loads(removed_path.read_text())["arms"]
        if entry["selection"] in COMPARED_SELECTIONS and entry.get("removed")
    }
    points = []
    for arm in arms:
        removed = removed_sets.get((arm.selection, arm.k))
        if removed is None:
            continue
        prediction = what_if_removed(results, removed, scaling=scaling, level=level)
        points.append(
            SweepPoint(
                selection=arm.selection,
                k=arm.k,
                removed=prediction.removed,
                measured=arm.mean - full.mean,
                measured_se=arm.diff_se,
                predicted=float(prediction.predicted[0] - prediction.full_accuracy[0]),
                predicted_stderr=float(prediction.predicted_stderr[0]),
            )
        )
    if not points:
        raise InputError(f"the sweep in {counterfactual_dir} has no arm that removes a named set of classes")
    measured = np.array([p.measured for p in points])
    predicted = np.array([p.predicted for p in points])
    constant = np.ptp(measured) == 0 or np.ptp(predicted) == 0
    spearman = float("nan") if len(points) < 3 or constant else float(stats.spearmanr(measured, predicted)[0])
    size = design_subset_size(results.config.design.kind, len(results.class_names), results.config.design.alpha)
    return SweepComparison(
        points=tuple(points),
        spearman=spearman,
        mean_absolute_error=float(np.abs(predicted - measured).mean()),
        scaling=scaling,
        level=level,
        subset_size=size,
        num_classes=len(results.class_names),
    )
