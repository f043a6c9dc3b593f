"""Algorithm 1 (difference of means) for every (class, target) pair at once — numpy only.

For K classes, m models and n targets the whole estimate is one matrix product
``maskᵀ · outputs`` (K×m · m×n) plus O(K·n) elementwise work:

* mean_in  = (maskᵀY) / n_in
* mean_out = (1ᵀY − maskᵀY) / n_out
* Infl     = mean_in − mean_out

Standard errors come from the same product. For a two-group split the total sum of squares of a
target's outputs is the within-group sum plus the between-group sum, and the latter is
``n_in·n_out/m · Infl²``, so the pooled within-group variance is
``(SS_total − n_in·n_out/m·Infl²) / (m − 2)`` and
``stderr = sqrt(s²_pooled · (1/n_in + 1/n_out))`` — the classic pooled two-sample standard error,
without the second product ``maskᵀ·Y²`` that per-group variances would cost.
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


def _check_finite(block: np.ndarray, start: int) -> None:
    finite = np.isfinite(block)
    if not finite.all():
        model, target = np.argwhere(~finite)[0]
        raise ValueError(
            f"outputs hold NaN or inf (first at model row {model}, target column {start + target}); "
            "drop or re-run the models that produced them"
        )


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
    n_out = m - n_in

    design = masks.T.astype(np.float32)  # K×m, C-contiguous for the product
    inv_in = (1.0 / n_in).astype(np.float32)[:, None]
    inv_out = (1.0 / n_out).astype(np.float32)[:, None]
    between = (n_in * n_out / m).astype(np.float32)[:, None]
    se_scale = (1.0 / n_in + 1.0 / n_out).astype(np.float32)[:, None] / (m - 2)

    values = np.empty((num_classes, n), dtype=np.float32)
    stderr = np.empty((num_classes, n), dtype=np.float32)
    block = block_targets or max(1, _BLOCK_BYTES // (4 * (2 * m + 2 * num_classes)))
    for start in range(0, n, block):
        stop = min(n, start + block)
        y = np.asarray(outputs[:, start:stop], dtype=np.float32)
        _check_finite(y, start)
        _block_influence(design, y, inv_in, inv_out, between, se_scale, values[:, start:stop], stderr[:, start:stop])
    return ClassInfluence(values, stderr, n_in, n_out, names, ids, output_kind)


def _block_influence(
    design: np.ndarray,
    y: np.ndarray,
    inv_in: np.ndarray,
    inv_out: np.ndarray,
    between: np.ndarray,
    se_scale: np.ndarray,
    values_out: np.ndarray,
    stderr_out: np.ndarray,
) -> None:
    # Centring each target's outputs first keeps the float32 product free of cancellation.
    centre = y.mean(axis=0, dtype=np.float64).astype(np.float32)
    yc = y - centre
    total = yc.sum(axis=0, dtype=np.float64).astype(np.float32)  # ≈ 0; kept so the formula is exact
    ss_total = np.square(yc).sum(axis=0, dtype=np.float64).astype(np.float32)
    sum_in = design @ yc  # K×b: the one matrix product
    # values = sum_in/n_in − (total − sum_in)/n_out, computed in place to avoid K×b temporaries.
    np.multiply(sum_in, inv_in + inv_out, out=values_out)
    values_out -= total * inv_out
    # stderr² = (SS_total − n_in·n_out/m · Infl²)/(m−2) · (1/n_in + 1/n_out)
    np.multiply(values_out, values_out, out=stderr_out)
    stderr_out *= -between
    stderr_out += ss_total
    np.maximum(stderr_out, 0.0, out=stderr_out)
    stderr_out *= se_scale
    np.sqrt(stderr_out, out=stderr_out)
