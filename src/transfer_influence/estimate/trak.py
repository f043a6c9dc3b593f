"""Gradient-based influence from a few models (TRAK, Park et al. 2023), aggregated to source classes.

Each model m contributes projected gradients Φ_m (L source examples × d) and Ψ_m (n target
examples × d) and TRAK's weights q_m (1 − p of each source example's true class). The score of
source example i on target example j is

    τ(i, j) = mean_m [ψ_m(j)ᵀ (Φ_mᵀΦ_m + λ_m I)⁻¹ φ_m(i)] · mean_m q_m(i)

(TRAK's ensemble: the kernel-solved scores averaged over models, times the averaged weights), and a
source class's influence on target j is the sum — or the mean — of τ(i, j) over its examples. The
scores are linear in each model's term, so every model's class scores are computed apart (their
mean is the estimate, their spread over models its standard error), and the class sum is taken
before the target side: Ψ_m ((Φ_m K_m⁻¹ ⊙ q) M) with M the L × K class membership, so memory is
L × d for the solve and d × K after it — the n × L score matrix is never formed. Target rows are
read in blocks (a memmapped Ψ is never loaded whole).

λ_m = ``ridge`` · tr(Φ_mᵀΦ_m) / d, relative to the kernel's mean eigenvalue so that one setting fits
any gradient scale; TRAK itself takes λ → 0, which needs L ≥ d.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np
from scipy import linalg

from ..errors import InputError
from .result import InfluenceEstimate

Aggregation = Literal["sum", "mean"]
AGGREGATIONS = ("sum", "mean")


@dataclass(frozen=True)
class ModelGradients:
    """One model's projected gradients: ``source`` (L × d), ``target`` (n × d), ``weights`` (L)."""

    source: np.ndarray
    target: np.ndarray
    weights: np.ndarray


def kernel_solved(source: np.ndarray, ridge: float) -> np.ndarray:
    """Φ (ΦᵀΦ + λI)⁻¹ (L × d, float64) by a Cholesky solve, λ = ridge · tr(ΦᵀΦ)/d."""
    phi = np.asarray(source, dtype=np.float64)
    kernel = phi.T @ phi
    dims = kernel.shape[0]
    kernel[np.diag_indices(dims)] += ridge * np.trace(kernel) / dims
    try:
        factor = linalg.cho_factor(kernel, lower=True)
    except linalg.LinAlgError as error:
        raise InputError(
            f"the gradient kernel (d = {dims}) is singular with ridge {ridge:g}: raise the ridge, or use "
            f"fewer projection dimensions than the {phi.shape[0]} source examples"
        ) from error
    return linalg.cho_solve(factor, phi.T).T


def unit_matrix(units: np.ndarray, num_units: int, aggregation: Aggregation) -> np.ndarray:
    """L × K: the source examples' class memberships, each column summing to 1 for ``mean``."""
    membership = np.zeros((units.size, num_units))
    membership[np.arange(units.size), units] = 1.0
    if aggregation == "mean":
        membership /= np.maximum(membership.sum(axis=0, keepdims=True), 1.0)
    return membership


def model_class_scores(
    model: ModelGradients, weights: np.ndarray, membership: np.ndarray, ridge: float, block: int
) -> np.ndarray:
    """K × n class scores of one model: (Ψ K⁻¹ Φᵀ ⊙ weights) aggregated by ``membership``, Ψ in row blocks."""
    solved = kernel_solved(model.source, ridge)
    # (Ψ K⁻¹Φᵀ ⊙ w) M = Ψ ((K⁻¹Φᵀ ⊙ w) M): a d × K matrix, so no target × source slice is ever formed.
    per_dim = (solved * weights[:, None]).T @ membership
    out = np.empty((membership.shape[1], model.target.shape[0]))
    for start in range(0, model.target.shape[0], block):
        out[:, start : start + block] = (np.asarray(model.target[start : start + block], dtype=np.float64) @ per_dim).T
    return out


def _check(models: Sequence[ModelGradients], units: np.ndarray, aggregation: str, ridge: float) -> None:
    """Refuse inputs the scores cannot be computed from, naming the problem."""
    if len(models) < 2:
        raise InputError(f"gradient influence needs at least 2 models for its standard errors, got {len(models)}")
    if aggregation not in AGGREGATIONS:
        raise InputError(f"unknown class aggregation {aggregation!r}; choose one of {list(AGGREGATIONS)}")
    if not ridge >= 0:
        raise InputError(f"the gradient kernel's ridge must be at least 0, got {ridge}")
    shapes = {(m.source.shape, m.target.shape[1], m.weights.shape) for m in models}
    if len(shapes) != 1 or models[0].source.shape[0] != units.size or models[0].target.shape[1] != models[0].source.shape[1]:
        raise InputError(
            f"the models' gradients disagree in shape ({sorted(shapes)}) or with the {units.size} source examples"
        )


def trak_influence(
    models: Sequence[ModelGradients],
    units: np.ndarray,
    unit_names: Sequence[str],
    target_ids: Sequence[str],
    ridge: float = 1e-3,
    aggregation: Aggregation = "sum",
    block: int = 1024,
    output_kind: str = "margin",
    target_groups: np.ndarray | None = None,
) -> InfluenceEstimate:
    """Source classes × target columns TRAK influence, its standard error across the M models
    (dof M − 1) and ``n_in`` = M: every gradient model was trained on every class.

    ``target_groups`` (n × G, e.g. each target class's examples weighted 1/n_c) makes the columns
    weighted sums of target examples, taken per model so the errors are those of the group: the
    examples' scores share each model's noise. ``target_ids`` then names the G groups."""
    units = np.asarray(units, dtype=np.int64)
    _check(models, units, aggregation, ridge)
    weights = np.mean([np.asarray(m.weights, dtype=np.float64) for m in models], axis=0)
    membership = unit_matrix(units, len(unit_names), aggregation)
    per_model = np.stack([model_class_scores(m, weights, membership, ridge, block) for m in models])
    if target_groups is not None:
        per_model = per_model @ np.asarray(target_groups, dtype=np.float64)
    count = len(models)
    return InfluenceEstimate(
        values=per_model.mean(axis=0),
        stderr=per_model.std(axis=0, ddof=1) / np.sqrt(count),
        n_in=np.full(len(unit_names), count),
        n_out=np.zeros(len(unit_names), dtype=np.int64),
        unit_names=tuple(unit_names),
        target_ids=tuple(str(t) for t in target_ids),
        dof=float(count - 1),
        output_kind=output_kind,
        estimator="trak",
    )
