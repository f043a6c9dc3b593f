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


ALTERNATIVES = ("by-sign", "less", "greater", "two-sided")


def one_sided_p_values(influence: InfluenceEstimate, column: int, alternative: str) -> np.ndarray:
    """p-values of 'no influence' against influence < 0 (``less``) or > 0 (``greater``), from the t
    distribution with the estimate's residual degrees of freedom (``two-sided``: both)."""
    if alternative == "two-sided":
        return influence.p_values()[:, column]
    t = influence.z_scores[:, column].astype(np.float64)
    dof = max(influence.dof, 1.0)
    if alternative == "less":
        return stats.t.cdf(t, dof)
    if alternative == "greater":
        return stats.t.sf(t, dof)
    raise InputError(f"unknown alternative {alternative!r}; choose one of {list(ALTERNATIVES)}")


def _bh_chosen(p: np.ndarray, fdr: float) -> tuple[np.ndarray, np.ndarray]:
    adjusted = stats.false_discovery_control(p, method="bh")
    return np.flatnonzero(adjusted <= fdr), adjusted


def significant_classes(
    influence: InfluenceEstimate, column: int = 0, fdr: float = 0.1, alternative: str = "by-sign"
) -> list[tuple[str, float, float]]:
    """Classes whose influence on one column is significant under Benjamini–Hochberg control at ``fdr``.

    Returns (class name, influence, BH-adjusted p) sorted by influence, most positive first.

    ``alternative``:

    * ``by-sign`` (default) — two lists, each with its own one-sided test and its own BH at ``fdr``:
      significantly negative (H1: influence < 0) and significantly positive (H1: > 0), returned
      together; the classes with a negative value are exactly the negative list. Why: the question
      asked of a list is one-sided ("which classes hurt?"), and filtering a two-sided list by sign
      spends half the error rate on the other sign, so it finds fewer of the classes that hurt. Each
      list keeps its expected false-discovery proportion at most ``fdr``;
    * ``less`` / ``greater`` — only the negative / only the positive list;
    * ``two-sided`` — classes whose influence is non-zero (one BH over two-sided p-values).

    p-values come from the t distribution with the estimate's residual degrees of freedom.
    """
    if alternative not in ALTERNATIVES:
        raise InputError(f"unknown alternative {alternative!r}; choose one of {list(ALTERNATIVES)}")
    if not 0 < fdr < 1:
        raise InputError(f"fdr must lie strictly between 0 and 1, got {fdr}")
    sides = ("less", "greater") if alternative == "by-sign" else (alternative,)
    values = influence.values[:, column]
    found: dict[int, float] = {}
    for side in sides:
        chosen, adjusted = _bh_chosen(one_sided_p_values(influence, column, side), fdr)
        if side != "two-sided":  # at fdr ≥ 0.5 a one-sided p-value could admit the other sign
            chosen = chosen[(values[chosen] < 0) == (side == "less")]
        found.update({int(k): float(adjusted[k]) for k in chosen})
    order = sorted(found, key=lambda k: -values[k])
    return [(influence.unit_names[k], float(values[k]), found[k]) for k in order]
