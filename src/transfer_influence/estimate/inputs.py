"""Input checks shared by every estimator: one place that turns bad arrays into one clear error."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import InputError


def _validate(masks: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    if masks.ndim != 2:
        raise InputError(f"masks must be 2-D (models × source units), got shape {masks.shape}")
    if outputs.ndim != 2:
        raise InputError(f"outputs must be 2-D (models × targets), got shape {outputs.shape}")
    if masks.shape[0] != outputs.shape[0]:
        raise InputError(
            f"masks have {masks.shape[0]} models (rows) but outputs have {outputs.shape[0]}; "
            "pass one mask row per model's output row"
        )
    if masks.shape[0] < 3:
        raise InputError(f"need at least 3 models to estimate influences and errors, got {masks.shape[0]}")
    if masks.dtype != np.bool_:
        if not np.isin(masks, (0, 1)).all():
            raise InputError("masks must be boolean or hold only 0 and 1 (unit in / out of the subset)")
        masks = masks.astype(bool)
    return masks


def _unit_list(columns: np.ndarray, class_names: Sequence[str] | None) -> str:
    """Classes by name; without names, by mask column, said as such — a bare column number quoted
    like a name ('21') reads as a class called 21 (and glyph classes are called '0'…'9')."""
    shown = columns[:10]
    more = f" and {columns.size - 10} more" if columns.size > 10 else ""
    if class_names is None:
        return f"mask columns {', '.join(str(int(k)) for k in shown)}{more} (pass class_names to name them)"
    return ", ".join(repr(class_names[k]) for k in shown) + more


def _check_classes_vary(n_in: np.ndarray, m: int, class_names: Sequence[str] | None) -> None:
    always = np.flatnonzero(n_in == m)
    never = np.flatnonzero(n_in == 0)
    if always.size or never.size:
        parts = []
        if always.size:
            parts.append(f"in every subset: {_unit_list(always, class_names)}")
        if never.size:
            parts.append(f"in no subset: {_unit_list(never, class_names)}")
        raise InputError(
            f"influence is undefined, over these {m} models, for classes " + "; classes ".join(parts)
            + " — each class must be both included and excluded by some model; train more models or use a "
            "design with alpha strictly between 0 and 1"
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
        raise InputError(f"{len(names)} class names for {num_classes} mask columns")
    if len(ids) != n:
        raise InputError(f"{len(ids)} target ids for {n} output columns")
    n_in = masks.sum(axis=0).astype(np.int64)
    _check_classes_vary(n_in, m, names if class_names is not None else None)
    return masks, names, ids, n_in
