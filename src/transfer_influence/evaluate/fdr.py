"""False discoveries among the influences: knockoff classes (paper App. F, Figure 30) and
Benjamini–Hochberg."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from ..errors import InputError
from ..estimate import InfluenceEstimate
from .reliability import fitter_for


@dataclass(frozen=True)
class KnockoffFDR:
    """Knockoff statistics against k, for the most positive and the most negative classes.

    Real and knockoff classes (fake classes whose masks are independent of every output) are
    estimated together and ranked by overall influence.

    * ``share_positive``/``share_negative`` — the paper's statistic (App. F, Figure 30): the share
      of knockoffs among the top k of the *joint* ranking. 0.5 is chance (nothing real stands out
      from noise); 0 means the top k are all real classes.
    * ``fdr_plus_positive``/``fdr_plus_negative`` — the knockoff+ estimate of the false-discovery
      rate among the top k *real* classes: (1 + knockoffs ranked above the k-th real class) / k,
      capped at 1. A knockoff outranks a null class as often as the reverse, so the knockoffs above
      the k-th real class count the null classes among the top k; the +1 makes the estimate
      conservative on average.

    With fixed-size subsets a class without effect displaces the others, so its influence is
    shifted by −(mean effect of the other classes); knockoffs have no such shift. When the classes
    help on average, null classes fall below the knockoffs: the positive curves then overstate
    false discoveries and the negative ones understate them.
    """

    top_k: np.ndarray
    share_positive: np.ndarray
    share_negative: np.ndarray
    fdr_plus_positive: np.ndarray
    fdr_plus_negative: np.ndarray


def knockoff_fdr(
    masks: np.ndarray, knockoff_masks: np.ndarray, outputs: np.ndarray, estimator_name: str = "dim"
) -> KnockoffFDR:
    """Rank real and knockoff classes together by overall influence (paper App. F) and return the
    share of knockoffs in the joint top k and the knockoff+ FDR estimate of the top k real classes,
    for k = 1 … K/2.

    ``knockoff_masks`` must be drawn from the same design as ``masks`` but independently of the
    outputs (e.g. the design with another seed), so that a knockoff looks like a null class.
    """
    masks = np.asarray(masks, dtype=bool)
    knockoff_masks = np.asarray(knockoff_masks, dtype=bool)
    if knockoff_masks.shape[0] != masks.shape[0]:
        raise InputError(
            f"knockoff masks have {knockoff_masks.shape[0]} rows but there are {masks.shape[0]} models; "
            "draw one knockoff mask per model"
        )
    overall = np.asarray(outputs, dtype=np.float32).mean(axis=1, keepdims=True)
    fit = fitter_for(estimator_name)
    joint = fit(np.concatenate([masks, knockoff_masks], axis=1), overall, None).values[:, 0]
    num_real = masks.shape[1]
    is_knockoff = np.arange(joint.size) >= num_real
    ks = np.arange(1, max(1, num_real // 2) + 1)
    return KnockoffFDR(
        ks,
        knockoff_share(joint, is_knockoff, ks),
        knockoff_share(-joint, is_knockoff, ks),
        knockoff_plus_fdr(joint, is_knockoff, ks),
        knockoff_plus_fdr(-joint, is_knockoff, ks),
    )


def _ranked(scores: np.ndarray, is_knockoff: np.ndarray) -> np.ndarray:
    """Knockoff flags in order of decreasing score (ties keep the real classes first)."""
    return is_knockoff[np.argsort(-scores, kind="stable")]


def knockoff_share(scores: np.ndarray, is_knockoff: np.ndarray, ks: np.ndarray) -> np.ndarray:
    """The paper's statistic: share of knockoffs among the top k of the joint ranking, per k."""
    knockoffs_so_far = np.cumsum(_ranked(scores, is_knockoff))
    return knockoffs_so_far[ks - 1] / ks


def knockoff_plus_fdr(scores: np.ndarray, is_knockoff: np.ndarray, ks: np.ndarray) -> np.ndarray:
    """Knockoff+ estimate of the FDR among the top k real classes: (1 + knockoffs ranked above the
    k-th real class) / k, capped at 1, per k."""
    ranked = _ranked(scores, is_knockoff)
    knockoffs_above = np.cumsum(ranked)[~ranked]  # at each real class, the knockoffs ranked above it
    return np.minimum(1.0, (1.0 + knockoffs_above[ks - 1]) / ks)


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
