"""The linear datamodeling score (LDS): the field's standard check of a datamodel (TRAK, dattri).

For each target column j, the influences act as a linear model of a held-out model's output,
``mask @ influences[:, j]`` (an intercept would not change a rank), and the score is the Spearman
correlation over held-out models between that prediction and the measured output; the LDS is its
mean over target columns. Why this and not split-half agreement alone: it asks whether the
influences *predict what a model trained on a new subset does*, which is what acting on them
(removing classes, what-if predictions) relies on.

The models scored must not have been used to fit the influences; ``lds_split`` gives the same
held-out split that ``reliability.held_out_spearman`` (the diagnostics) uses, whole design blocks
held out together, and ``fit_and_score`` fits on the rest and scores on it.

Standard error: the per-target scores share the same held-out models, so they are correlated and
sd/√n over targets would be far too small. The error here is a delete-a-group jackknife over the
held-out models (whole design blocks, merged into at most ``JACKKNIFE_GROUPS`` groups): it measures
how much the score depends on which models happened to be held out, with the influences fixed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from ..errors import InputError
from ..estimate.lasso import lasso_datamodel
from .reliability import _sub, fitter_for, held_out_problem, held_out_rows, level_outputs

JACKKNIFE_GROUPS = 20
"""Groups of held-out models the jackknife deletes one at a time (fewer when fewer exist)."""

LDS_ESTIMATORS = ("dim", "ridge", "lasso")


@dataclass(frozen=True)
class LdsResult:
    """Linear datamodeling score of one set of influences on held-out models.

    ``mean`` is the mean over scored target columns of ``per_target`` (Spearman over held-out
    models between predicted and measured output). A column whose *output* is constant over the
    held-out models has nothing to rank: NaN, left out of the mean and counted in ``num_constant``.
    A column whose *prediction* is constant while its output varies (e.g. a LASSO fit that selected
    nothing) predicts no ranking at all: it scores 0 and stays in the mean (leaving it out would
    flatter the estimator), counted in ``num_flat_predictions``. ``stderr`` is the jackknife error
    over held-out models (NaN with fewer than 2 groups); ``num_models`` the held-out models scored,
    ``num_train_models`` those the influences were fitted on (0 when not known here).
    """

    mean: float
    per_target: np.ndarray
    stderr: float
    num_models: int
    num_targets: int
    num_constant: int
    num_train_models: int = 0
    num_flat_predictions: int = 0

    def interval(self, level: float = 0.95) -> tuple[float, float]:
        """Normal-approximation interval of the mean score from the jackknife error."""
        half = float(stats.norm.ppf(0.5 + level / 2)) * self.stderr
        return self.mean - half, self.mean + half


def _column_spearman(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Spearman per column (average ranks for ties): NaN where the output is constant, 0 where
    only the prediction is (see ``LdsResult``)."""
    a = stats.rankdata(pred, axis=0)
    b = stats.rankdata(truth, axis=0)
    a -= a.mean(axis=0)
    b -= b.mean(axis=0)
    spread_a, spread_b = (a**2).sum(axis=0), (b**2).sum(axis=0)
    denom = np.sqrt(spread_a * spread_b)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = np.where(denom > 1e-12, (a * b).sum(axis=0) / np.where(denom > 1e-12, denom, 1.0), 0.0)
    return np.where(spread_b > 1e-12, rho, np.nan)


def _flat(values: np.ndarray) -> np.ndarray:
    """Columns that do not vary over the rows."""
    return np.ptp(values, axis=0) <= 1e-12 * np.maximum(1.0, np.abs(values).max(axis=0))


def _check_inputs(masks: np.ndarray, outputs: np.ndarray, influences: np.ndarray) -> tuple[np.ndarray, ...]:
    masks = np.asarray(masks, dtype=np.float64)
    outputs = np.asarray(outputs, dtype=np.float64)
    influences = np.asarray(influences, dtype=np.float64)
    if outputs.ndim == 1:
        outputs = outputs[:, None]
    if influences.ndim == 1:
        influences = influences[:, None]
    if masks.ndim != 2 or outputs.ndim != 2 or influences.ndim != 2:
        raise InputError("LDS needs 2-D masks (models × units), outputs (models × targets) and influences (units × targets)")
    if masks.shape[0] != outputs.shape[0]:
        raise InputError(f"{masks.shape[0]} held-out mask rows but {outputs.shape[0]} output rows; pass one of each per model")
    if influences.shape != (masks.shape[1], outputs.shape[1]):
        raise InputError(
            f"influences must be units × targets = {(masks.shape[1], outputs.shape[1])}, got {influences.shape}"
        )
    if masks.shape[0] < 3:
        raise InputError(f"LDS needs at least 3 held-out models to rank, got {masks.shape[0]}; hold out more models")
    if not (np.isfinite(outputs).all() and np.isfinite(influences).all()):
        raise InputError("outputs or influences hold NaN or inf; drop the models or targets that produced them")
    return masks, outputs, influences


def _jackknife_groups(m: int, blocks: np.ndarray | None) -> list[np.ndarray]:
    """Held-out rows in at most ``JACKKNIFE_GROUPS`` groups, whole design blocks kept together."""
    if blocks is None:
        ids = np.arange(m)
    else:
        blocks = np.asarray(blocks)
        if blocks.shape != (m,):
            raise InputError(f"blocks must hold one design block id per held-out model ({m}), got shape {blocks.shape}")
        ids = np.unique(blocks, return_inverse=True)[1]
    num_ids = int(ids.max()) + 1
    group_of = np.arange(num_ids) * min(JACKKNIFE_GROUPS, num_ids) // num_ids
    groups = group_of[ids]
    return [np.flatnonzero(groups == g) for g in range(int(groups.max()) + 1)]


def _mean_score(pred: np.ndarray, truth: np.ndarray) -> float:
    scores = _column_spearman(pred, truth)
    return float(np.nanmean(scores)) if np.isfinite(scores).any() else float("nan")


def _jackknife_stderr(pred: np.ndarray, truth: np.ndarray, blocks: np.ndarray | None) -> float:
    groups = _jackknife_groups(pred.shape[0], blocks)
    if len(groups) < 2:
        return float("nan")
    keep = np.ones(pred.shape[0], dtype=bool)
    estimates = []
    for rows in groups:
        keep[rows] = False
        estimates.append(_mean_score(pred[keep], truth[keep]) if keep.sum() >= 3 else np.nan)
        keep[rows] = True
    values = np.asarray(estimates)
    values = values[np.isfinite(values)]
    g = values.size
    if g < 2:
        return float("nan")
    return float(np.sqrt((g - 1) / g * ((values - values.mean()) ** 2).sum()))


def linear_datamodeling_score(
    masks_heldout: np.ndarray,
    outputs_heldout: np.ndarray,
    influences: np.ndarray,
    *,
    blocks: np.ndarray | None = None,
    num_train_models: int = 0,
) -> LdsResult:
    """LDS of ``influences`` (units × targets) on held-out models (``masks_heldout``: models × units,
    ``outputs_heldout``: models × targets). ``blocks`` (one design block per held-out model) keeps a
    block together in the jackknife, as its shared seed makes its models' outputs dependent."""
    masks, outputs, infl = _check_inputs(masks_heldout, outputs_heldout, influences)
    pred = masks @ infl
    per_target = _column_spearman(pred, outputs)
    scored = np.isfinite(per_target)
    mean = float(per_target[scored].mean()) if scored.any() else float("nan")
    return LdsResult(
        mean=mean,
        per_target=per_target,
        stderr=_jackknife_stderr(pred, outputs, blocks) if scored.any() else float("nan"),
        num_models=int(masks.shape[0]),
        num_targets=int(per_target.size),
        num_constant=int((~scored).sum()),
        num_train_models=int(num_train_models),
        num_flat_predictions=int((_flat(pred) & scored).sum()),
    )


def lds_split(
    m: int, blocks: np.ndarray | None = None, held_out_fraction: float = 0.25, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, held-out rows): the split ``reliability.held_out_spearman`` uses, so the
    diagnostics' held-out Spearman and the LDS score the same models; whole blocks on one side."""
    if not 0 < held_out_fraction < 1:
        raise InputError(f"held_out_fraction must lie strictly between 0 and 1, got {held_out_fraction}")
    if m < 8:
        raise InputError(f"the LDS needs at least 8 models (fit on some, score on the others), got {m}")
    return held_out_rows(m, blocks, held_out_fraction, seed)


def fitted_values(
    estimator: str, masks: np.ndarray, outputs: np.ndarray, blocks: np.ndarray | None = None, seed: int = 0
) -> np.ndarray:
    """Influences (units × targets) by ``dim``, ``ridge`` or ``lasso`` (λ per target on a hold-out
    drawn from these models), from the models given alone."""
    if estimator == "lasso":
        # λ is chosen on a hold-out drawn from the training models: the scored models stay unseen.
        return lasso_datamodel(masks, outputs, seed=seed, blocks=blocks).values
    return fitter_for(estimator)(masks, outputs, blocks).values


def fit_and_score(
    masks: np.ndarray,
    outputs: np.ndarray,
    estimator: str = "ridge",
    *,
    blocks: np.ndarray | None = None,
    held_out_fraction: float = 0.25,
    seed: int = 0,
) -> LdsResult:
    """Fit ``estimator`` (``dim``, ``ridge`` or ``lasso``) on the training models of ``lds_split``
    and return its LDS on the held-out ones."""
    if estimator not in LDS_ESTIMATORS:
        raise InputError(f"unknown estimator {estimator!r} for the LDS; choose one of {list(LDS_ESTIMATORS)}")
    masks = np.asarray(masks, dtype=bool)
    outputs = np.asarray(outputs)
    if outputs.ndim != 2 or masks.ndim != 2 or masks.shape[0] != outputs.shape[0]:
        raise InputError(f"masks {masks.shape} and outputs {outputs.shape} must be 2-D with one row per model")
    train, test = lds_split(masks.shape[0], blocks, held_out_fraction, seed)
    problem = held_out_problem(masks, blocks, held_out_fraction, seed)
    if problem is not None:
        raise InputError(f"cannot score the LDS: {problem}")
    values = fitted_values(estimator, masks[train], outputs[train], _sub(blocks, train), seed)
    return linear_datamodeling_score(
        masks[test], outputs[test], values, blocks=_sub(blocks, test), num_train_models=int(train.size)
    )


def level_lds(
    masks: np.ndarray,
    outputs: np.ndarray,
    target_labels: np.ndarray,
    num_target_classes: int,
    level: str = "example",
    estimator: str = "ridge",
    **options: object,
) -> LdsResult:
    """LDS at one level (``example``: per target example, the TRAK/dattri definition;
    ``target_class``: per target class mean output; ``overall``: the mean output, one column)."""
    levels = level_outputs(outputs, target_labels, num_target_classes)
    if level not in levels:
        raise InputError(f"unknown level {level!r}; choose one of {list(levels)}")
    return fit_and_score(masks, levels[level], estimator, **options)  # type: ignore[arg-type]
