"""Algorithm 1 (difference of means) for every (class, target) pair at once — numpy only.

For K classes, m models and n targets the whole estimate is one matrix product (K×m · m×n) plus
O(K·n) elementwise work. With n_in/n_out the number of models that include/exclude a class:

* Infl = sum_in/n_in − (total − sum_in)/n_out = (1/n_in + 1/n_out)·(sum_in − n_in·mean),
  and sum_in − n_in·mean = Dᵀy with the *column-centred* mask D = mask − n_in/m, so one product
  with D (each column scaled by its class's 1/n_in + 1/n_out) is the whole influence matrix.
* Standard errors: for a two-group split the total sum of squares of a target's outputs is the
  within-group sum plus the between-group sum n_in·n_out/m·Infl², so the pooled within-group
  variance is (SS_total − n_in·n_out/m·Infl²)/(m − 2) and
  stderr = sqrt(s²_pooled·(1/n_in + 1/n_out)) — the classic pooled two-sample standard error,
  without the second product maskᵀ·y² that per-group variances would cost. The totals come from a
  matrix-vector product (a non-finite total flags NaN/inf), SS_total from one memory-bound pass.

Targets are processed in blocks so that temporaries stay bounded whatever n is.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import InputError
from .inputs import prepare_inputs
from .result import InfluenceEstimate

_BLOCK_BYTES = 256 * 2**20


def class_influence(
    masks: np.ndarray,
    outputs: np.ndarray,
    class_names: Sequence[str] | None = None,
    target_ids: Sequence[str] | None = None,
    output_kind: str | None = None,
    block_targets: int | None = None,
) -> InfluenceEstimate:
    """Algorithm 1 for all K×n (class, target) pairs, with pooled standard errors.

    ``masks`` (m×K bool) says which classes each model's source subset held; ``outputs`` (m×n,
    any float array or memmap) holds each model's output on each target. Raises ``ValueError``
    if shapes disagree, a class is in all or none of the subsets, or outputs are not finite.
    """
    masks, names, ids, n_in = prepare_inputs(masks, outputs, class_names, target_ids)
    m, num_classes = masks.shape
    n = outputs.shape[1]
    n_out = m - n_in

    # Centring the design instead of the outputs: with d_ik = mask_ik − n_in_k/m,
    #   Σ_i d_ik·y_ij = sum_in − n_in·mean_j,  and  Infl = (1/n_in + 1/n_out)·(sum_in − n_in·mean_j),
    # so the product *is* the influence up to a per-class scale: no K×n temporaries.
    scale = (1.0 / n_in + 1.0 / n_out).astype(np.float32)
    # The centred mask with each class's scale folded in: the product is the influence itself.
    design_rows = np.subtract(masks, (n_in / m).astype(np.float32), dtype=np.float32)
    design_rows *= scale
    design = design_rows.T  # BLAS reads the transposed operand in place
    ones = np.ones(m, dtype=np.float32)
    # stderr² = (SS_total − n_in·n_out/m·Infl²) · scale/(m−2), computed in place below.
    neg_between = (-(n_in * n_out) / m).astype(np.float32)[:, None]
    scale_per_dof = scale[:, None] / (m - 2)

    values = np.empty((num_classes, n), dtype=np.float32)
    stderr = np.empty((num_classes, n), dtype=np.float32)
    # Targets are taken in blocks whose m×b float32 temporaries (a converted copy of the outputs,
    # centred outputs) stay under _BLOCK_BYTES; float32 outputs need no copy, so one block.
    bounded = max(1, _BLOCK_BYTES // (4 * m))
    block = block_targets or (n if outputs.dtype == np.float32 else bounded)
    for start in range(0, n, block):
        stop = min(n, start + block)
        y = np.asarray(outputs[:, start:stop], dtype=np.float32)
        with np.errstate(invalid="ignore", over="ignore"):  # NaN/inf are reported just below
            total = ones @ y
        if not np.isfinite(total).all():
            _raise_not_finite(y, start)
        mean = total / m
        ss_total = _centred_sum_of_squares(y, mean)
        v, se = values[:, start:stop], stderr[:, start:stop]
        if _needs_centring(mean, ss_total, m):
            for a in range(0, y.shape[1], bounded):
                np.matmul(design, y[:, a : a + bounded] - mean[a : a + bounded], out=v[:, a : a + bounded])
        else:
            np.matmul(design, y, out=v)
        np.multiply(v, v, out=se)
        se *= neg_between
        se += ss_total
        np.maximum(se, 0.0, out=se)
        se *= scale_per_dof
        np.sqrt(se, out=se)
    return InfluenceEstimate(values, stderr, n_in, n_out, names, ids, dof=float(m - 2), output_kind=output_kind)


def _centred_sum_of_squares(y: np.ndarray, mean: np.ndarray, rows: int = 64) -> np.ndarray:
    """Σ(y − mean)² per column over cache-sized row chunks, accumulated in float64: exact enough
    for near-constant outputs, and no m×b temporary."""
    acc = np.zeros(y.shape[1], dtype=np.float64)
    for a in range(0, y.shape[0], rows):
        centred = y[a : a + rows] - mean
        acc += np.einsum("ij,ij->j", centred, centred)
    return acc.astype(np.float32)


def _needs_centring(mean: np.ndarray, ss_total: np.ndarray, m: int) -> bool:
    """True when a column's offset dwarfs its spread, so float32 sums of raw outputs would lose the
    differences between models (e.g. outputs like 1000 ± 0.001); the product is then redone on
    centred outputs. Probabilities, margins and accuracies never come close."""
    spread = np.sqrt(ss_total / m)
    return bool((np.abs(mean) > 1e3 * spread).any())


def _raise_not_finite(block: np.ndarray, start: int) -> None:
    model, target = np.argwhere(~np.isfinite(block))[0]
    raise InputError(
        f"outputs hold NaN or inf (first at model row {model}, target column {start + target}); "
        "drop or re-run the models that produced them"
    )
