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
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import InputError
from .inputs import prepare_inputs
from .result import InfluenceEstimate


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
    m = masks.shape[0]
    y = np.asarray(outputs, dtype=np.float64)
    if not np.isfinite(y).all():
        raise InputError("outputs hold NaN or inf; drop or re-run the models that produced them")
    x = _centre(masks.astype(np.float64), blocks)
    y = _centre(y, blocks)
    u, s, vt = np.linalg.svd(x, full_matrices=False)
    # Fixed-size subsets make the centred mask rank-deficient (every row has the same number of
    # classes, so the columns sum to zero): drop the null directions, which gives the
    # minimum-norm solution — effects measured relative to the average class.
    keep = s > s.max() * max(x.shape) * np.finfo(float).eps * 10
    u, s, vt = u[:, keep], s[keep], vt[keep]
    uty = u.T @ y  # r×n: every penalty reuses it
    lam = _gcv_penalty(s, uty, y, m) if ridge is None else ridge * m
    shrink = s / (s**2 + lam)
    coef = vt.T @ (shrink[:, None] * uty)  # K×n
    fitted_df = float((s**2 / (s**2 + lam)).sum())
    residual = y - x @ coef
    dof = max(m - fitted_df - 1, 1.0)
    sigma2 = (residual**2).sum(axis=0) / dof
    # Var(β) = σ² V diag(s²/(s²+λ)²) Vᵀ; its diagonal per class.
    leverage = (vt.T**2) @ (s**2 / (s**2 + lam) ** 2)
    stderr = np.sqrt(np.outer(leverage, sigma2))
    return InfluenceEstimate(
        coef.astype(np.float32), stderr.astype(np.float32), n_in, m - n_in, names, ids,
        dof=dof, output_kind=output_kind, estimator="ridge",
    )


def _gcv_penalty(s: np.ndarray, uty: np.ndarray, y: np.ndarray, m: int) -> float:
    """The λ minimising generalised cross-validation error summed over targets."""
    total = float((y**2).sum())
    best, best_score = 0.0, np.inf
    for ridge in (0.0, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0, 10.0):
        lam = ridge * m
        keep = s**2 / (s**2 + lam) if lam > 0 else np.ones_like(s)
        # ||y − ŷ||² = ||y||² − Σ_r (2·keep_r − keep_r²)·(uᵀy)_r²
        rss = total - float((((2 * keep - keep**2)[:, None]) * uty**2).sum())
        score = rss / max(m - keep.sum() - 1, 1.0) ** 2
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
