"""Regression on the inclusion mask (the paper's "datamodels", App. B): numpy only.

``outputs ≈ b + (mask − mean mask) · β`` fitted by ridge regression for all targets at once. A
coefficient is the effect of including a class *with the other classes held fixed*; difference of
means instead averages over the other classes, so their effects enter its noise. When the other
classes matter (small subsets, strong classes), regression removes that part of the variance.

Fixed-size subsets leave one direction of the mask unidentified (each row holds the same number of
classes): coefficients are the minimum-norm solution, i.e. effects relative to the average class.

One SVD of the centred m×K mask serves every target and every penalty: with X = U S Vᵀ,
β(λ) = V diag(s/(s²+λ)) Uᵀ Y. The penalty is chosen by generalised cross-validation, shared by
all targets (one λ keeps the fit one matrix product; per-target λ would need n of them).

Residual degrees of freedom: centring spends one per fixed effect — one for the intercept, or one
per block when mask and outputs are centred within blocks — and the fit spends tr(H) = Σ s²/(s²+λ).
Counting only one for the centring would, with blocks of two models (complement pairs), halve
the true count and make the standard errors about √2 too small.

The t intervals hold for the coefficients' expectation; with λ > 0 that is shrunk towards zero,
so they cover the unpenalised effects well only when the chosen penalty is small (on the
simulator, nominal 95% intervals held at ridge=0 but covered 80–92% with the GCV penalty).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import InputError
from .inputs import prepare_inputs
from .result import InfluenceEstimate

PENALTY_GRID = (0.0, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0, 10.0)
"""Penalties (in units of m) that generalised cross-validation chooses from."""


def datamodel_influence(
    masks: np.ndarray,
    outputs: np.ndarray,
    class_names: Sequence[str] | None = None,
    target_ids: Sequence[str] | None = None,
    output_kind: str | None = None,
    ridge: float | None = None,
    blocks: np.ndarray | None = None,
) -> InfluenceEstimate:
    """Ridge coefficients of each target's output on the class-inclusion mask, with standard errors.

    ``ridge`` is the penalty in units of m (λ = ridge·m); ``None`` chooses it by GCV from a grid.
    ``blocks`` (one id per model) adds a fixed effect per design block: mask and outputs are
    centred within blocks, which removes a block's shared seed effect (``train.seeding: block``).
    Returned as a ``InfluenceEstimate`` so that every analysis accepts either estimator.
    """
    masks, names, ids, n_in = prepare_inputs(masks, outputs, class_names, target_ids)
    fit = _RidgeFit.fit(masks, outputs, ridge, blocks)
    # Var(β) = σ² V diag(s²/(s²+λ)²) Vᵀ; its diagonal per class.
    leverage = (fit.vt.T**2) @ fit.variance_weights
    stderr = np.sqrt(np.outer(leverage, fit.sigma2))
    return InfluenceEstimate(
        fit.coef.astype(np.float32), stderr.astype(np.float32), n_in, masks.shape[0] - n_in, names, ids,
        dof=fit.dof, output_kind=output_kind, estimator="ridge",
    )


def datamodel_contrasts(
    masks: np.ndarray,
    outputs: np.ndarray,
    contrasts: np.ndarray,
    ridge: float | None = None,
    blocks: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Linear combinations cᵀβ of the datamodel coefficients (C × K ``contrasts``) for every target,
    with standard errors from the coefficients' full covariance σ²·V diag(s²/(s²+λ)²) Vᵀ.

    Why not from ``stderr``: the coefficients are correlated (fixed-size subsets make them sum to a
    constant), so the error of a sum of coefficients is not the root sum of their squared errors.
    Only the part of each contrast in the identified directions has a value: with fixed-size subsets
    a contrast should sum to zero over the classes (e.g. "remove these classes rather than as many
    average ones"); its component along the unidentified direction is dropped.
    Returns (values C × n, standard errors C × n, residual degrees of freedom).
    """
    masks = np.asarray(masks)
    contrasts = np.atleast_2d(np.asarray(contrasts, dtype=np.float64))
    if contrasts.shape[1] != masks.shape[1]:
        raise InputError(f"contrasts need one weight per class ({masks.shape[1]}), got shape {contrasts.shape}")
    masks, _, _, _ = prepare_inputs(masks, outputs, None, None)
    fit = _RidgeFit.fit(masks, outputs, ridge, blocks)
    values = contrasts @ fit.coef
    projected = contrasts @ fit.vt.T  # C × r: the contrasts in the identified directions
    variance_factor = (projected**2) @ fit.variance_weights  # C
    stderr = np.sqrt(np.outer(variance_factor, fit.sigma2))
    return values, stderr, fit.dof


class _RidgeFit:
    """One ridge fit of every target on the (block-)centred mask, kept for coefficients and errors."""

    def __init__(self, coef: np.ndarray, vt: np.ndarray, variance_weights: np.ndarray, sigma2: np.ndarray, dof: float) -> None:
        self.coef = coef  # K × n
        self.vt = vt  # r × K, the identified directions
        self.variance_weights = variance_weights  # r: s²/(s²+λ)², so Var(β) = σ² V diag(·) Vᵀ
        self.sigma2 = sigma2  # n residual variances
        self.dof = dof

    @classmethod
    def fit(cls, masks: np.ndarray, outputs: np.ndarray, ridge: float | None, blocks: np.ndarray | None) -> "_RidgeFit":
        m = masks.shape[0]
        y = np.asarray(outputs, dtype=np.float64)
        if not np.isfinite(y).all():
            raise InputError("outputs hold NaN or inf; drop or re-run the models that produced them")
        fixed_effects = _count_fixed_effects(blocks, m)
        x = _centre(masks.astype(np.float64), blocks)
        y = _centre(y, blocks)
        u, s, vt = np.linalg.svd(x, full_matrices=False)
        # Fixed-size subsets make the centred mask rank-deficient (every row has the same number of
        # classes, so the columns sum to zero): drop the null directions, which gives the
        # minimum-norm solution — effects measured relative to the average class.
        keep = s > s.max() * max(x.shape) * np.finfo(float).eps * 10
        u, s, vt = u[:, keep], s[keep], vt[keep]
        uty = u.T @ y  # r×n: every penalty reuses it
        lam = _gcv_penalty(s, uty, y, m, fixed_effects) if ridge is None else ridge * m
        coef = vt.T @ ((s / (s**2 + lam))[:, None] * uty)  # K×n
        fitted_df = float((s**2 / (s**2 + lam)).sum())
        residual = y - x @ coef
        dof = _residual_dof(m, fixed_effects, fitted_df)
        sigma2 = (residual**2).sum(axis=0) / dof
        return cls(coef, vt, s**2 / (s**2 + lam) ** 2, sigma2, dof)


def _count_fixed_effects(blocks: np.ndarray | None, m: int) -> int:
    """Degrees of freedom the centring spends: the intercept, or one mean per design block."""
    if blocks is None:
        return 1
    blocks = np.asarray(blocks)
    if blocks.shape != (m,):
        raise InputError(f"blocks must hold one design block id per model ({m}), got shape {blocks.shape}")
    return int(np.unique(blocks).size)


def _residual_dof(m: int, fixed_effects: int, fitted_df: float) -> float:
    """m − (fixed effects) − tr(H): what is left to estimate the noise variance from.

    Floored at 1 so that a fit with (almost) no residual — e.g. a few models of a split-half curve,
    whose coefficients are still usable — returns its values instead of failing; its standard errors
    are then meaningless, which the caller sees from ``dof`` ≈ 1.
    """
    return max(m - fixed_effects - fitted_df, 1.0)


def _gcv_penalty(s: np.ndarray, uty: np.ndarray, y: np.ndarray, m: int, fixed_effects: int) -> float:
    """The λ minimising generalised cross-validation error summed over targets.

    GCV(λ) = RSS(λ) / (m − fixed effects − tr H(λ))²: the centring's fixed effects are fitted
    parameters like the coefficients, so they count against the residual degrees of freedom too.
    """
    total = float((y**2).sum())
    best, best_score = PENALTY_GRID[-1] * m, np.inf  # the heaviest penalty when none leaves a residual
    for ridge in PENALTY_GRID:
        lam = ridge * m
        keep = s**2 / (s**2 + lam) if lam > 0 else np.ones_like(s)
        # ||y − ŷ||² = ||y||² − Σ_r (2·keep_r − keep_r²)·(uᵀy)_r²
        rss = total - float((((2 * keep - keep**2)[:, None]) * uty**2).sum())
        residual_dof = m - fixed_effects - keep.sum()
        if residual_dof < 1.0:
            continue  # this penalty leaves no residual to score it by
        score = rss / residual_dof**2
        if score < best_score:
            best, best_score = lam, score
    return best


def _centre(values: np.ndarray, blocks: np.ndarray | None) -> np.ndarray:
    """Subtract column means, within each block when blocks are given."""
    if blocks is None:
        return values - values.mean(axis=0)
    ids, inverse = np.unique(np.asarray(blocks), return_inverse=True)
    sums = np.zeros((ids.size, values.shape[1]))
    np.add.at(sums, inverse, values)
    counts = np.bincount(inverse, minlength=ids.size)[:, None]
    return values - (sums / counts)[inverse]
