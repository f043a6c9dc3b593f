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

The prediction's standard error combines three independent parts: the sampling error of the
all-source mean (r baseline runs, r − 1 degrees of freedom), of the subset models' mean (one term
per design block where the design is blocked, B − 1 degrees of freedom, so that a block's shared
seed is counted once) and of the contrast, from the coefficients' full covariance
(``estimate.datamodel_contrasts``, the ridge's residual degrees of freedom). Its t interval uses the
Welch–Satterthwaite degrees of freedom of that sum. Why not the ridge's: on the demo about 98% of
the variance is the mean of 3 baseline runs, whose variance has 2 degrees of freedom, and a t
quantile with the ridge's ~1,551 covered the truth 81% of the time in simulation, against 94% with
Welch–Satterthwaite (tests/test_whatif_intervals.py). With a single baseline run the baseline accuracy has no error
term at all: the prediction is given without an interval (``has_interval`` is False, ``interval``
refuses), never with a silent zero.

The part that needs no interpolation is the *differential* −Σ_{k∈R} β_k: removing R rather than
|R| average classes, in sources of s classes. The prediction extrapolates: the coefficients were
measured within sources of s classes and are applied to a source of K − |R| classes, where a
class's marginal effect may differ; the dilution scaling is a model of that, which retraining (the
counterfactual sweep) checks. Two limits are enforced: a removal that leaves fewer than s classes
lies outside the range of source sizes the study measured (s to K) and is refused before any work;
an accuracy is a share, so a prediction (or interval end) outside [0, 1] is clipped to it and
flagged (``clipped``), never printed as, say, 1.0104.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy import stats

from ..errors import InputError, unknown_name_error
from ..estimate import datamodel_contrasts, group_means
from ..study.design import design_subset_size
from ..study.results import StudyResults
from ..study.store import StudyStore
from .context import StudyContext
from .target_split import split_targets

ACCURACY_KIND = "correct"

NO_BASELINE_ERROR = (
    "the study has one all-source baseline run, so the baseline accuracy has no error term and the "
    "prediction no interval (on the demo that term is about 98% of its variance); run the study with "
    "baselines.repeats ≥ 2"
)


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
    """Clipped to [0, 1] (an accuracy); ``clipped`` marks the columns where that changed it."""
    predicted_stderr: np.ndarray
    """NaN with a single baseline run (no error term for the baseline; see ``has_interval``)."""
    dof: np.ndarray
    """Welch–Satterthwaite degrees of freedom of the prediction's variance, per column."""
    subset_size: int
    num_classes: int
    scaling: str
    """'dilution': class effects scaled by s/(K − |R|) in the full source; 'none': unscaled."""
    level: str = "log"
    """How accuracy is interpolated between s and K classes: 'log' (in log classes) or 'linear'."""
    differential_dof: float = float("nan")
    """The ridge's residual degrees of freedom: the differential's own t quantile."""
    baseline_runs: int = 0
    clipped: np.ndarray | None = None
    unclipped: np.ndarray | None = None
    """The prediction before clipping to [0, 1]: the interval is centred on it and then clipped, so
    an overshoot does not drag the interval's lower end down (None: equal to ``predicted``)."""

    @property
    def has_interval(self) -> bool:
        """Whether every part of the prediction's error is estimated (two or more baseline runs)."""
        return self.baseline_runs >= 2

    def critical_value(self, level: float = 0.95) -> np.ndarray:
        """Per-column t quantile with the Welch–Satterthwaite degrees of freedom."""
        if not self.has_interval:
            raise InputError(NO_BASELINE_ERROR)
        return stats.t.ppf(0.5 + level / 2, np.maximum(self.dof, 1.0))

    def differential_half_width(self, level: float = 0.95) -> np.ndarray:
        """Half width of the differential's t interval (the ridge's degrees of freedom)."""
        return float(stats.t.ppf(0.5 + level / 2, max(self.differential_dof, 1.0))) * self.differential_stderr

    def interval(self, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) per column, clipped to [0, 1]; refused with a single baseline run."""
        half = self.critical_value(level) * self.predicted_stderr
        centre = self.predicted if self.unclipped is None else self.unclipped
        return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)

    @property
    def interval_note(self) -> str:
        """Why there is no interval ('' when there is one)."""
        return "" if self.has_interval else NO_BASELINE_ERROR

    @property
    def any_clipped(self) -> bool:
        return bool(self.clipped is not None and self.clipped.any())

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


def _check_options(scaling: str, level: str) -> None:
    if scaling not in SCALINGS:
        raise InputError(f"unknown scaling {scaling!r}; choose one of {', '.join(SCALINGS)}")
    if level not in LEVELS:
        raise InputError(f"unknown level {level!r}; choose one of {', '.join(LEVELS)}")


def interpolation_weight(removed: np.ndarray | int, num_classes: int, subset_size: int, level: str) -> np.ndarray:
    """w for a source of K − |R| classes: 0 at the full source, 1 at the subsets' size s."""
    if level not in LEVELS:
        raise InputError(f"unknown level {level!r}; choose one of {', '.join(LEVELS)}")
    removed = np.asarray(removed, dtype=np.float64)
    if level == "linear":
        return removed / (num_classes - subset_size)
    return np.log(num_classes / (num_classes - removed)) / np.log(num_classes / subset_size)


def check_supported_removal(num_removed: int, num_classes: int, subset_size: int) -> None:
    """Refuse a removal whose source is smaller than any the study's models were trained on.

    The study measured sources of s classes (its subsets) and K classes (the all-source baseline):
    the prediction interpolates between them, and a source of fewer than s classes (say the 72-class
    source minus 70, 2 classes left, on a study of 7-class subsets) would extrapolate far below the
    smallest source measured."""
    left = num_classes - num_removed
    if left < subset_size:
        raise InputError(
            f"removing {num_removed} of {num_classes} classes leaves a source of {left} classes, outside the "
            f"range the study's models support: sources of {subset_size} (its subsets) to {num_classes} classes "
            f"(the all-source baseline), i.e. removals of 1 to {num_classes - subset_size} classes; remove at most "
            f"{num_classes - subset_size}, or run a study with subsets of at most {left} (a smaller alpha)"
        )


def _blocked_mean(y: np.ndarray, blocks: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, float]:
    """Mean of the subset models' columns, the variance of that mean and its degrees of freedom.

    With blocks, the mean's variance comes from the block totals (the cluster estimate, B − 1
    degrees of freedom): a seed shared by a block's models shifts them together, so treating them
    as independent would understate it."""
    m = y.shape[0]
    mean = y.mean(axis=0)
    if blocks is None:
        return mean, y.var(axis=0, ddof=1) / m, float(m - 1)
    _, index = np.unique(np.asarray(blocks), return_inverse=True)
    num_blocks = int(index.max()) + 1
    if num_blocks < 2:
        return mean, np.full(y.shape[1], np.nan), 0.0
    residual_totals = np.zeros((num_blocks, y.shape[1]))
    np.add.at(residual_totals, index, y - mean)
    variance = num_blocks / (num_blocks - 1) * (residual_totals**2).sum(axis=0) / m**2
    return mean, variance, float(num_blocks - 1)


def _baseline_mean(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Mean of the baseline runs, the variance of that mean (NaN with one run) and its dof."""
    if len(rows) < 2:
        return rows.mean(axis=0), np.full(rows.shape[1], np.nan), 0.0
    return rows.mean(axis=0), rows.var(axis=0, ddof=1) / len(rows), float(len(rows) - 1)


def welch_satterthwaite(variances: Sequence[np.ndarray], dofs: Sequence[float]) -> np.ndarray:
    """Degrees of freedom of a sum of independent variance estimates, (Σ v)² / Σ v²/ν."""
    total = np.sum(variances, axis=0)
    denominator = np.sum([np.asarray(v) ** 2 / max(d, 1e-300) for v, d in zip(variances, dofs)], axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, total**2 / np.where(denominator > 0, denominator, 1.0), np.inf)


@dataclass(frozen=True)
class _Combined:
    predicted: np.ndarray
    stderr: np.ndarray
    dof: np.ndarray
    clipped: np.ndarray
    unclipped: np.ndarray


def _combine(
    baseline: tuple[np.ndarray, np.ndarray, float],
    subsets: tuple[np.ndarray, np.ndarray, float],
    contrast: tuple[np.ndarray, np.ndarray, float],
    q: np.ndarray,
    d: np.ndarray,
) -> _Combined:
    """(1 − w)·full + w·subsets + d·contrast, its standard error and Welch–Satterthwaite dof.

    Each input is (value, variance or standard error, dof); ``contrast`` holds values and standard
    errors shaped like the prediction, ``q`` and ``d`` broadcast against it."""
    full, full_var, full_dof = baseline
    mean, mean_var, mean_dof = subsets
    values, errors, ridge_dof = contrast
    raw = (1 - q) * full + q * mean + d * values
    parts = [(1 - q) ** 2 * full_var, q**2 * mean_var, (d * errors) ** 2]
    parts = [np.broadcast_to(p, raw.shape) for p in parts]
    return _Combined(
        predicted=np.clip(raw, 0.0, 1.0),
        stderr=np.sqrt(np.sum(parts, axis=0)),
        dof=welch_satterthwaite(parts, [full_dof, mean_dof, ridge_dof]),
        clipped=(raw < 0.0) | (raw > 1.0),
        unclipped=raw,
    )


def predict_removal(
    masks: np.ndarray,
    y: np.ndarray,
    baseline_rows: np.ndarray,
    removed: Sequence[int],
    subset_size: int,
    *,
    scaling: str = "dilution",
    level: str = "log",
    ridge: float | None = None,
    blocks: np.ndarray | None = None,
    class_names: Sequence[str] | None = None,
    columns: Sequence[str] | None = None,
) -> WhatIf:
    """The what-if prediction from arrays: subset models' ``masks`` (m × K) and accuracies ``y``
    (m × columns), the all-source runs' accuracies ``baseline_rows`` (runs × columns), the removed
    class indices and the design's subset size s. ``what_if_removed`` reads these from a study."""
    _check_options(scaling, level)
    num_classes = masks.shape[1]
    check_supported_removal(len(removed), num_classes, subset_size)
    names = tuple(class_names) if class_names is not None else tuple(str(k) for k in range(num_classes))
    weights = np.zeros((1, num_classes))
    weights[0, list(removed)] = -1.0
    values, errors, ridge_dof = datamodel_contrasts(masks, y, weights, ridge=ridge, blocks=blocks)
    q = interpolation_weight(len(removed), num_classes, subset_size, level)
    d = np.asarray(subset_size / (num_classes - len(removed)) if scaling == "dilution" else 1.0)
    baseline = _baseline_mean(np.asarray(baseline_rows, dtype=np.float64))
    subsets = _blocked_mean(y, blocks)
    combined = _combine(baseline, subsets, (values[0], errors[0], ridge_dof), q, d)
    return WhatIf(
        removed=tuple(names[k] for k in removed),
        columns=tuple(columns) if columns is not None else tuple(str(j) for j in range(y.shape[1])),
        full_accuracy=baseline[0],
        subset_accuracy=subsets[0],
        differential=values[0],
        differential_stderr=errors[0],
        predicted=combined.predicted,
        predicted_stderr=combined.stderr,
        dof=combined.dof,
        subset_size=subset_size,
        num_classes=num_classes,
        scaling=scaling,
        level=level,
        differential_dof=float(ridge_dof),
        baseline_runs=int(len(baseline_rows)),
        clipped=combined.clipped,
        unclipped=combined.unclipped,
    )


def what_if(
    context: StudyContext,
    remove: Sequence[str],
    ridge: float | None = None,
    scaling: str = "dilution",
    level: str = "log",
) -> WhatIf:
    """``transfer-influence whatif``: predict the full source's accuracy on the context's target
    without the source classes named in ``remove``. Refused, before anything is read, on an
    example-level study (a what-if removes whole classes)."""
    context.require_units("class", "whatif")
    return what_if_removed(context.results, remove, ridge=ridge, scaling=scaling, level=level)


def what_if_removed(
    results: StudyResults,
    remove: Sequence[str],
    ridge: float | None = None,
    scaling: str = "dilution",
    level: str = "log",
    columns: np.ndarray | None = None,
) -> WhatIf:
    """Predict the full source's target accuracy without the classes named in ``remove``.

    ``columns`` restricts every accuracy to some target examples (a counterfactual sweep's scoring
    half, so that the prediction is made on the images the retrains were measured on)."""
    _check_options(scaling, level)
    removed = _check_removal(results, remove)
    num_classes = len(results.class_names)
    size = design_subset_size(results.config.design.kind, num_classes, results.config.design.alpha)
    check_supported_removal(len(removed), num_classes, size)
    baseline = _accuracy_columns(results, _all_source_correct(results), columns)
    y = _accuracy_columns(results, np.asarray(results.outputs(ACCURACY_KIND), dtype=np.float64), columns)
    return predict_removal(
        results.masks, y, baseline, [results.class_names.index(c) for c in removed], size,
        scaling=scaling, level=level, ridge=ridge, blocks=results.blocks, class_names=results.class_names,
        columns=("all targets",) + tuple(results.target_class_names),
    )


def _check_removal(results: StudyResults, remove: Sequence[str]) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(str(c) for c in remove))
    if not names:
        raise InputError("name at least one source class to remove (--remove A,B,C)")
    unknown = [c for c in names if c not in results.class_names]
    if unknown:
        raise unknown_name_error("source class", unknown[0], results.class_names, "source classes",
                                 see="`transfer-influence influence STUDY`")
    if len(names) >= len(results.class_names):
        raise InputError(f"removing {len(names)} of {len(results.class_names)} classes leaves no source")
    if results.num_models < 3:
        raise InputError(f"{results.path} has {results.num_models} finished models; a what-if needs at least 3")
    return names


def _accuracy_columns(results: StudyResults, correct: np.ndarray, columns: np.ndarray | None = None) -> np.ndarray:
    """(m × 1+C): accuracy over all targets, then over each target class's examples (of ``columns``
    only, when given)."""
    labels = results.target_labels
    if columns is not None:
        correct, labels = correct[:, columns], labels[columns]
    per_class = group_means(correct, labels, len(results.target_class_names))
    return np.column_stack([correct.mean(axis=1), per_class])


def _all_source_correct(results: StudyResults) -> np.ndarray:
    """``correct`` of every all-source baseline run (runs × target examples) on the results' own
    target: an extra target's predictions are anchored on that target's baseline accuracy."""
    store = StudyStore.open(results.path)
    runs = sorted(r for r in store.finished_run_ids() if r.startswith("all_source-"))
    if not runs:
        raise InputError(
            f"{results.path} has no finished all-source baseline run, which anchors the prediction; "
            "run the study with baselines.repeats ≥ 1 (2 or more give an error for it)"
        )
    target = store.extra_target_name(results.target_name or None)
    return np.stack([store.read_run_output(r, ACCURACY_KIND, target).astype(np.float64) for r in runs])


# ---- choosing how many classes to remove ----------------------------------------------------------
@dataclass(frozen=True)
class RemovalCurve:
    """Predicted accuracy (on chosen target examples) of the full source minus the first k classes
    of an order, for k = 0 … ``max_k``; the rule's k is the one predicted best."""

    order: tuple[int, ...]
    predicted: np.ndarray
    """Index k: the full source minus ``order[:k]`` (k = 0 is the all-source baseline itself);
    clipped to [0, 1]."""
    predicted_stderr: np.ndarray
    """NaN with a single baseline run (the baseline has no error term)."""
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
    _check_options(scaling, level)
    m, num_classes = results.masks.shape
    size = design_subset_size(results.config.design.kind, num_classes, results.config.design.alpha)
    max_k = min(len(order), num_classes - size)
    correct = np.asarray(results.outputs(ACCURACY_KIND), dtype=np.float64)
    baseline = _all_source_correct(results)
    if columns is not None:
        correct, baseline = correct[:, columns], baseline[:, columns]
    y = correct.mean(axis=1, keepdims=True)
    full = _baseline_mean(baseline.mean(axis=1, keepdims=True))
    contrasts = -np.tril(np.ones((max_k, max_k)))  # row k−1 removes order[:k]
    weights = np.zeros((max_k, num_classes))
    weights[:, list(order[:max_k])] = contrasts
    values, errors, ridge_dof = datamodel_contrasts(results.masks, y, weights, ridge=ridge, blocks=results.blocks)
    ks = np.arange(1, max_k + 1)
    q = interpolation_weight(ks, num_classes, size, level)[:, None]
    d = (size / (num_classes - ks) if scaling == "dilution" else np.ones(max_k))[:, None]
    combined = _combine(full, _blocked_mean(y, results.blocks), (values, errors, ridge_dof), q, d)
    return RemovalCurve(
        tuple(int(c) for c in order[:max_k]),
        np.concatenate([np.clip(full[0], 0.0, 1.0), combined.predicted[:, 0]]),
        np.concatenate([np.sqrt(full[1]), combined.stderr[:, 0]]),
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
    """What-if accuracy − all-source baseline accuracy, on the sweep's scoring half (as measured)."""
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
    outside_range: tuple[tuple[str, int], ...] = ()
    """(selection, k) of arms left out: they remove more than K − s classes, below the smallest
    source the study measured, where no prediction is made."""


def compare_with_sweep(
    results: StudyResults, counterfactual_dir: str | Path, scaling: str = "dilution", level: str = "log"
) -> SweepComparison:
    """Predict every non-random arm of a finished counterfactual sweep with ``what_if_removed`` and
    set each beside what retraining measured: how far the datamodel's extrapolation to the full
    source can be trusted, on this study's own retrains.

    Both sides are on the same images: the sweep scores retrains on its scoring half of the target
    test set, so the predictions are made on those columns too (the selection half ranked them)."""
    counterfactual_dir = Path(counterfactual_dir)
    arms = read_sweep_summary(counterfactual_dir)
    scoring = _scoring_columns(results, counterfactual_dir)
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
    size = design_subset_size(results.config.design.kind, len(results.class_names), results.config.design.alpha)
    points, outside = _sweep_points(results, arms, full, removed_sets, size, scoring, scaling, level)
    if not points:
        raise InputError(f"the sweep in {counterfactual_dir} has no arm that removes a named set of classes")
    measured = np.array([p.measured for p in points])
    predicted = np.array([p.predicted for p in points])
    constant = np.ptp(measured) == 0 or np.ptp(predicted) == 0
    spearman = float("nan") if len(points) < 3 or constant else float(stats.spearmanr(measured, predicted)[0])
    return SweepComparison(
        points=tuple(points),
        spearman=spearman,
        mean_absolute_error=float(np.abs(predicted - measured).mean()),
        scaling=scaling,
        level=level,
        subset_size=size,
        num_classes=len(results.class_names),
        outside_range=tuple(outside),
    )


def _sweep_points(
    results: StudyResults,
    arms: list[SweepArm],
    full: SweepArm,
    removed_sets: dict[tuple[str, int], tuple[str, ...]],
    size: int,
    scoring: np.ndarray,
    scaling: str,
    level: str,
) -> tuple[list[SweepPoint], list[tuple[str, int]]]:
    """The predicted and measured change of every arm that removes a named set, and the arms left
    out because they remove more than K − s classes (outside the measured source sizes)."""
    points, outside = [], []
    for arm in arms:
        removed = removed_sets.get((arm.selection, arm.k))
        if removed is None:
            continue
        if len(set(removed)) > len(results.class_names) - size:
            outside.append((arm.selection, arm.k))
            continue
        prediction = what_if_removed(results, removed, scaling=scaling, level=level, columns=scoring)
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
    return points, outside


def _scoring_columns(results: StudyResults, counterfactual_dir: Path) -> np.ndarray:
    """Indices of the target examples the sweep scored on (the complement of its selection half),
    checked against the split sizes its ``removed.json`` recorded."""

    scoring = np.flatnonzero(~split_targets(results.target_labels, results.config.seed))
    removed_path = counterfactual_dir / "removed.json"
    recorded = json.loads(removed_path.read_text()).get("target_split", {}) if removed_path.is_file() else {}
    expected = recorded.get("scoring_examples")
    if expected is not None and int(expected) != scoring.size:
        raise InputError(
            f"{removed_path} records {expected} scoring images but this study's split has {scoring.size}; "
            "the sweep belongs to another target set — pass the matching --target, or run the counterfactual again"
        )
    return scoring
