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

from dataclasses import dataclass
from typing import Sequence

import numpy as np

_BLOCK_BYTES = 256 * 2**20


@dataclass(frozen=True)
class ClassInfluence:
    """Influence of each source class (rows) on each target (columns), with its uncertainty.

    ``values[k, j]`` is the mean output on target j over models whose subset included class k minus
    the mean over models that excluded it; ``stderr`` is its pooled two-sample standard error;
    ``n_in``/``n_out`` count the models on each side.
    """

    values: np.ndarray
    stderr: np.ndarray
    n_in: np.ndarray
    n_out: np.ndarray
    class_names: tuple[str, ...]
    target_ids: tuple[str, ...]
    output_kind: str | None = None
    estimator: str = "dim"
    """``dim`` (difference of means) or ``ridge`` (regression coefficients on the mask)."""

    @property
    def num_models(self) -> int:
        return int(self.n_in[0] + self.n_out[0])

    @property
    def z_scores(self) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.stderr > 0, self.values / self.stderr, 0.0)

    def column(self, target: str | int) -> np.ndarray:
        j = self.target_ids.index(str(target)) if isinstance(target, str) else int(target)
        return self.values[:, j]


def _validate(masks: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    if masks.ndim != 2:
        raise ValueError(f"masks must be 2-D (models × classes), got shape {masks.shape}")
    if outputs.ndim != 2:
        raise ValueError(f"outputs must be 2-D (models × targets), got shape {outputs.shape}")
    if masks.shape[0] != outputs.shape[0]:
        raise ValueError(
            f"masks have {masks.shape[0]} models (rows) but outputs have {outputs.shape[0]}; "
            "pass one mask row per model's output row"
        )
    if masks.shape[0] < 3:
        raise ValueError(f"need at least 3 models to estimate influences and errors, got {masks.shape[0]}")
    if masks.dtype != np.bool_:
        if not np.isin(masks, (0, 1)).all():
            raise ValueError("masks must be boolean or hold only 0 and 1 (class in / out of the subset)")
        masks = masks.astype(bool)
    return masks


def _check_classes_vary(n_in: np.ndarray, m: int, class_names: Sequence[str]) -> None:
    always = np.flatnonzero(n_in == m)
    never = np.flatnonzero(n_in == 0)
    if always.size or never.size:
        parts = []
        if always.size:
            parts.append(f"in every subset: {[class_names[k] for k in always[:10]]}")
        if never.size:
            parts.append(f"in no subset: {[class_names[k] for k in never[:10]]}")
        raise ValueError(
            "influence is undefined for classes " + "; ".join(parts)
            + " — each class must be both included and excluded by some model; train more models "
            "or use a design with alpha strictly between 0 and 1"
        )


def prepare_inputs(
    masks: np.ndarray,
    outputs: np.ndarray,
    class_names: Sequence[str] | None,
    target_ids: Sequence[str] | None,
) -> tuple[np.ndarray, tuple[str, ...], tuple[str, ...], np.ndarray]:
    """Checks shared by every estimator: boolean masks, labels, and classes both in and out.

    Returns the boolean masks, class names, target ids and each class's inclusion count.
    """
    masks = _validate(np.asarray(masks), outputs)
    m, num_classes = masks.shape
    n = outputs.shape[1]
    names = tuple(class_names) if class_names is not None else tuple(str(k) for k in range(num_classes))
    ids = tuple(str(t) for t in target_ids) if target_ids is not None else tuple(str(j) for j in range(n))
    if len(names) != num_classes:
        raise ValueError(f"{len(names)} class names for {num_classes} mask columns")
    if len(ids) != n:
        raise ValueError(f"{len(ids)} target ids for {n} output columns")
    n_in = masks.sum(axis=0).astype(np.int64)
    _check_classes_vary(n_in, m, names)
    return masks, names, ids, n_in


def class_influence(
    masks: np.ndarray,
    outputs: np.ndarray,
    class_names: Sequence[str] | None = None,
    target_ids: Sequence[str] | None = None,
    output_kind: str | None = None,
    block_targets: int | None = None,
) -> ClassInfluence:
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
    return ClassInfluence(values, stderr, n_in, n_out, names, ids, output_kind)


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
    raise ValueError(
        f"outputs hold NaN or inf (first at model row {model}, target column {start + target}); "
        "drop or re-run the models that produced them"
    )
