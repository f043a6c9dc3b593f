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
* Block-level standard errors: the pooled error treats models as independent, which models of one
  balanced design block are not. In a complement pair or a partition block each class is in one
  model and out of the others, so the other classes' effects enter the in- and out-means with
  opposite signs (the pooled error is too small: coverage of nominal 95% intervals fell to ~90% for
  complement pairs on the simulator), while a seed shared by the block cancels from the difference
  (the pooled error is then too large). Given ``blocks``, the error comes from the blocks, which
  are independent: Infl = Σ_b Σ_{i∈b} w_i·y_i with w = mask/n_in − (1−mask)/n_out, and
  Var ≈ G/(G−1)·Σ_b (Σ_{i∈b} w_i·e_i)² over the G blocks with residuals e_i = y_i − (its group's
  mean) — the cluster-robust error, which for complement pairs is exactly the paired t-test's —
  with G − 1 degrees of freedom.

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
    blocks: np.ndarray | None = None,
) -> InfluenceEstimate:
    """Algorithm 1 for all K×n (class, target) pairs, with pooled or block-level standard errors.

    ``masks`` (m×K bool) says which classes each model's source subset held; ``outputs`` (m×n,
    any float array or memmap) holds each model's output on each target. ``blocks`` (one design
    block id per model) makes the standard errors block-level (see the module docstring); the
    values do not depend on it. With fewer than two blocks there is nothing to compare blocks
    by, and the pooled error is returned. Raises ``InputError`` if shapes disagree, a class is in
    all or none of the subsets, or outputs are not finite.
    """
    masks, names, ids, n_in = prepare_inputs(masks, outputs, class_names, target_ids)
    m, num_classes = masks.shape
    n = outputs.shape[1]
    n_out = m - n_in
    grid = _BlockGrid.build(masks, n_in, blocks)

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
        if grid is not None:
            for a in range(0, y.shape[1], bounded):
                cols = slice(a, a + bounded)
                se[:, cols] = grid.standard_errors(y[:, cols] - mean[cols], v[:, cols])
    dof = float(m - 2) if grid is None else float(grid.num_blocks - 1)
    return InfluenceEstimate(values, stderr, n_in, n_out, names, ids, dof=dof, output_kind=output_kind)


class _BlockGrid:
    """The models laid out block by block (G blocks × the largest block's B slots, padded), with each
    model's weight in every class's difference of means, for block-level standard errors.

    A block's score is s_bkj = A_bkj − f_bk·Infl_kj with A_bkj = Σ_p w_bpk·y_bpj over the block's
    slots p (outputs centred) and f_bk the block's Σ w·(group mean) per unit of influence. Σ_b A²
    would need a G×K×n tensor; it is instead Σ_{p,q} (w_p⊙w_q)ᵀ(y_p⊙y_q), B(B+1)/2 matrix products
    over the blocks (float64, so that the subtraction of the fitted part keeps its digits), and
    Σ_b s² = Σ_b A² − 2·Infl·Σ_b f·A + Infl²·Σ_b f².

    Balanced designs (partition blocks, complement pairs) hold each class in at most one model of a
    block. Then, with w = mask·(1/n_in + 1/n_out) − 1/n_out and E_b the block's summed outputs,
    A_bk = scale_k·M_bk − E_b/n_out with M_bk = Σ_{i∈b} mask_ik·y_i a single term, so
    Σ_b A² = scale²·maskᵀy² − 2·scale/n_out·maskᵀ(y⊙E_b(i)) + Σ_b E_b²/n_out²: two products with the
    mask instead of B(B+1)/2, whatever the block size.
    """

    _TEMP_BYTES = 32 * 2**20

    def __init__(
        self,
        rows: np.ndarray,
        weights: np.ndarray,
        fitted_weights: np.ndarray,
        fitted_square: np.ndarray,
        single: "_SingleInBlock | None",
    ) -> None:
        self.rows = rows  # G × B model row per slot; padding points at an appended zero row
        self.weights = weights  # (m + 1) × K, w_ik = mask/n_in − (1 − mask)/n_out, last row zero
        self.fitted_weights = fitted_weights  # m × K, f of the model's block times its weight
        self.fitted_square = fitted_square  # K, Σ_b f_bk²
        self.num_blocks = rows.shape[0]
        self.single = single  # the two-product shortcut, where no block holds a class twice

    @classmethod
    def build(cls, masks: np.ndarray, n_in: np.ndarray, blocks: np.ndarray | None) -> "_BlockGrid | None":
        if blocks is None:
            return None
        m, num_classes = masks.shape
        blocks = np.asarray(blocks)
        if blocks.shape != (m,):
            raise InputError(f"blocks must hold one design block id per model ({m}), got shape {blocks.shape}")
        ids, inverse = np.unique(blocks, return_inverse=True)
        if ids.size < 2:
            return None
        sizes = np.bincount(inverse)
        order = np.argsort(inverse, kind="stable")
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        slot = np.arange(m) - starts[inverse[order]]
        rows = np.full((ids.size, sizes.max()), m, dtype=np.int64)
        rows[inverse[order], slot] = order
        n_out = m - n_in
        weights = np.vstack([np.where(masks, 1.0 / n_in, -1.0 / n_out), np.zeros((1, num_classes))])
        # With centred outputs the out-group mean is −(n_in/m)·Infl and the in-group mean that plus
        # Infl, so a block's Σ w·(group mean) = Infl·(c_b/n_in − (n_in/m)·Σ_b w), c_b its models holding the class.
        block_weight = np.zeros((ids.size, num_classes))
        np.add.at(block_weight, inverse, weights[:m])
        block_count = np.zeros((ids.size, num_classes))
        np.add.at(block_count, inverse, masks)
        fitted = block_count / n_in - (n_in / m) * block_weight
        single = None
        if block_count.max() <= 1:
            single = _SingleInBlock(masks.astype(np.float64), inverse, ids.size, 1.0 / n_in + 1.0 / n_out, 1.0 / n_out)
        return cls(rows, weights, fitted[inverse] * weights[:m], (fitted**2).sum(axis=0), single)

    def standard_errors(self, centred: np.ndarray, influence: np.ndarray) -> np.ndarray:
        """K × b block-level standard errors for b target columns of (column-centred) outputs,
        taken in column chunks whose G × chunk float64 temporaries stay under _TEMP_BYTES."""
        rows_per_column = self.num_blocks if self.single is None else len(self.fitted_weights)
        chunk = max(1, self._TEMP_BYTES // (8 * rows_per_column))
        out = np.empty(influence.shape, dtype=np.float32)
        for a in range(0, centred.shape[1], chunk):
            cols = slice(a, a + chunk)
            out[:, cols] = self._chunk_errors(np.asarray(centred[:, cols], np.float64), influence[:, cols].astype(np.float64))
        return out

    def _chunk_errors(self, centred: np.ndarray, influence: np.ndarray) -> np.ndarray:
        total = self.single.sum_of_squared_scores(centred) if self.single else self._sum_of_squared_scores(centred)
        total -= 2.0 * influence * (self.fitted_weights.T @ centred)
        total += influence**2 * self.fitted_square[:, None]
        np.maximum(total, 0.0, out=total)
        g = self.num_blocks
        return np.sqrt(total * g / (g - 1))

    def _sum_of_squared_scores(self, centred: np.ndarray) -> np.ndarray:
        """Σ_b A_bk² for any blocks: B(B+1)/2 products over the block slots."""
        padded = np.vstack([centred, np.zeros((1, centred.shape[1]))])
        slots = self.rows.shape[1]
        total = np.zeros((self.weights.shape[1], centred.shape[1]))
        for p in range(slots):
            w_p, y_p = self.weights[self.rows[:, p]], padded[self.rows[:, p]]
            total += (w_p * w_p).T @ (y_p * y_p)
            for q in range(p + 1, slots):
                total += 2.0 * ((w_p * self.weights[self.rows[:, q]]).T @ (y_p * padded[self.rows[:, q]]))
        return total


class _SingleInBlock:
    """Σ_b A_bk² when every block holds each class in at most one model (see ``_BlockGrid``)."""

    def __init__(self, masks: np.ndarray, block_of: np.ndarray, num_blocks: int, scale: np.ndarray, inv_out: np.ndarray) -> None:
        self.masks = masks  # m × K float64
        self.block_of = block_of  # block index of each model
        self.num_blocks = num_blocks
        order = np.argsort(block_of, kind="stable")  # models sorted by block, for np.add.reduceat
        self.order = None if (order == np.arange(order.size)).all() else order
        self.starts = np.searchsorted(block_of[order], np.arange(num_blocks))
        self.scale = scale[:, None]  # 1/n_in + 1/n_out
        self.inv_out = inv_out[:, None]  # 1/n_out

    def sum_of_squared_scores(self, centred: np.ndarray) -> np.ndarray:
        rows = centred if self.order is None else centred[self.order]
        block_sums = np.add.reduceat(rows, self.starts, axis=0)
        squares = self.masks.T @ (centred * centred)
        cross = self.masks.T @ (centred * block_sums[self.block_of])
        between = (block_sums * block_sums).sum(axis=0)
        return self.scale**2 * squares - 2.0 * self.scale * self.inv_out * cross + self.inv_out**2 * between

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
