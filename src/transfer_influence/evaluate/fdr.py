"""False discoveries among the influences: knockoff classes (Figure 30) and Benjamini–Hochberg."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from ..errors import InputError
from ..estimate import InfluenceEstimate
from .reliability import fitter_for


@dataclass(frozen=True)
class KnockoffFDR:
    """Estimated false-discovery rate among the top-k classes, by knockoff classes (Figure 30)."""

    top_k: np.ndarray
    fdr_positive: np.ndarray
    fdr_negative: np.ndarray


def knockoff_fdr(
    masks: np.ndarray, knockoff_masks: np.ndarray, outputs: np.ndarray, estimator_name: str = "dim"
) -> KnockoffFDR:
    """Rank real and knockoff classes together by overall influence; knockoffs have no effect, so
    the knockoffs ranked above the k-th real class estimate the false discoveries among the top k.

    ``knockoff_masks`` must be drawn from the same design as ``masks`` but independently of the
    outputs (e.g. the design with another seed), so that a knockoff looks like a null class.
    """
    masks = np.asarray(masks, dtype=bool)
    knockoff_masks = np.asarray(knockoff_masks, dtype=bool)
    if knockoff_masks.shape[0] != masks.shape[0]:
        raise InputError("knockoff masks need one row per model")
    overall = np.asarray(outputs, dtype=np.float32).mean(axis=1, keepdims=True)
    fit = fitter_for(estimator_name)
    joint = fit(np.concatenate([masks, knockoff_masks], axis=1), overall, None).values[:, 0]
    num_real = masks.shape[1]
    is_knockoff = np.arange(joint.size) >= num_real
    ks = np.arange(1, num_real // 2 + 1)
    return KnockoffFDR(ks, _fdr_curve(joint, is_knockoff, ks), _fdr_curve(-joint, is_knockoff, ks))


def _fdr_curve(scores: np.ndarray, is_knockoff: np.ndarray, ks: np.ndarray) -> np.ndarray:
    order = np.argsort(-scores, kind="stable")
    knock = np.cumsum(is_knockoff[order])
    real = np.cumsum(~is_knockoff[order])
    fdr = []
    for k in ks:
        position = int(np.searchsorted(real, k))  # where the k-th real class sits
        fdr.append(min(1.0, knock[position] / k))
    return np.asarray(fdr)


def significant_classes(influence: InfluenceEstimate, column: int = 0, fdr: float = 0.1) -> list[tuple[str, float, float]]:
    """Classes whose influence on one column is non-zero under Benjamini–Hochberg control at ``fdr``.

    Two-sided p-values from the t distribution with the estimate's own residual degrees of freedom;
    returns (class name, influence, adjusted p) sorted by influence.
    """
    p = influence.p_values()[:, column]
    adjusted = stats.false_discovery_control(p, method="bh")
    chosen = np.flatnonzero(adjusted <= fdr)
    values = influence.values[:, column]
    chosen = chosen[np.argsort(-values[chosen])]
    return [(influence.unit_names[k], float(values[k]), float(adjusted[k])) for k in chosen]
