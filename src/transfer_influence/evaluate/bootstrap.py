"""Bootstrap standard deviation of the overall influences against the number of models (Figure 8).

A resample of N models drawn with replacement is summarised by how often it drew each model
(a row of counts): with the counts matrix C (resamples × m), C·mask gives every class's n_in and
(C ⊙ y)·mask its sum of outputs over including models, so the resampled influences are two
matrix products — never the resamples × N × K tensor that indexing the masks by the draws would
materialise (tens of GB at paper scale). Resamples are taken in chunks so that memory stays
bounded by a few m×K and chunk×max(m, K) arrays whatever the number of resamples.

With ``blocks`` (one design block per model) the resampled unit is a whole block, not a model.
Why: a blocked design's models are not independent draws. A ``partition`` block holds disjoint
subsets that together use every class about once, and ``train.seeding: block`` gives the block's
models one seed, so a block-shared shift cancels from each class's in/out comparison; a complement
pair holds a subset and its complement. Resampling single models breaks that balance: on the
simulator (tests/test_bootstrap_blocks.py, 200 models of 30 classes) the per-model bootstrap
reported 2.2× the true sampling sd for partition blocks of 10 with a shared seed, 1.9× for
complement pairs with one, and 0.91× for complement pairs without a shared seed; resampling whole
blocks gave 0.95, 0.98 and 0.98 (the sd of the design that was run, up to the bootstrap's own
√((B−1)/B) shrinkage with B blocks).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError

_CHUNK_BYTES = 8 * 2**20


@dataclass(frozen=True)
class BootstrapCurve:
    """Mean over classes of the bootstrap std of overall influences, against the number of models."""

    models: np.ndarray
    mean_std: np.ndarray


def bootstrap_std(
    masks: np.ndarray,
    outputs: np.ndarray,
    points: int = 6,
    resamples: int = 200,
    seed: int = 0,
    blocks: np.ndarray | None = None,
) -> BootstrapCurve:
    """Resample N of the models with replacement and recompute the overall influences (Figure 8).

    ``blocks`` (one design block id per model, as ``StudyResults.blocks`` gives): resample whole
    blocks instead, N/block-size of them; the curve's ``models`` is then the mean number of models
    the resamples held. Pass the study's blocks whenever it has them (see the module docstring)."""
    masks = np.asarray(masks, dtype=bool)
    m, num_classes = masks.shape
    overall = _row_means(outputs)
    # Centred outputs keep float32 sums exact enough: the influence is a difference of means, so the
    # offset cancels from it, and the counts and inclusion numbers are small integers.
    centred = (overall - overall.mean()).astype(np.float32)
    design = masks.astype(np.float32)
    block_of, num_units = _resampling_units(blocks, m)
    smallest = max(8, m // 32) if block_of is None else max(2, num_units // 32)
    sizes = np.unique(np.geomspace(smallest, num_units, points).astype(int))
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_BYTES // (8 * max(m, num_classes)))
    means, models = [], []
    for size in sizes:
        draws = rng.integers(0, num_units, size=(resamples, size))
        infl = np.empty((resamples, num_classes))
        held = np.empty(resamples)
        for start in range(0, resamples, chunk):
            counts = _draw_counts(draws[start : start + chunk], num_units)
            if block_of is not None:
                counts = counts[:, block_of]  # a drawn block brings every one of its models
            held[start : start + chunk] = counts.sum(axis=1)
            infl[start : start + chunk] = _resampled_influence(counts, centred, design, held[start : start + chunk])
        means.append(float(np.nanmean(np.nanstd(infl, axis=0))))
        models.append(float(held.mean()))
    model_axis = sizes if block_of is None else np.rint(models).astype(int)
    return BootstrapCurve(model_axis, np.asarray(means))


def _resampling_units(blocks: np.ndarray | None, m: int) -> tuple[np.ndarray | None, int]:
    """(block index of every model, number of blocks), or (None, m) to resample single models."""
    if blocks is None:
        return None, m
    blocks = np.asarray(blocks)
    if blocks.shape != (m,):
        raise InputError(f"blocks must hold one design block id per model ({m}), got shape {blocks.shape}")
    ids, block_of = np.unique(blocks, return_inverse=True)
    if ids.size < 2:
        raise InputError(
            f"the bootstrap resamples whole design blocks and the models span {ids.size}; "
            "train at least two blocks (more for a useful error) before bootstrapping"
        )
    return block_of, int(ids.size)


def _row_means(outputs: np.ndarray, rows: int = 256) -> np.ndarray:
    """Each model's mean output, accumulated in float64 over row chunks (no m×n float64 copy)."""
    m = outputs.shape[0]
    means = np.empty(m)
    for a in range(0, m, rows):
        means[a : a + rows] = np.asarray(outputs[a : a + rows]).mean(axis=1, dtype=np.float64)
    return means


def _draw_counts(draws: np.ndarray, m: int) -> np.ndarray:
    """(resamples × m) float32: how often each resample drew each model."""
    r = draws.shape[0]
    flat = (draws + m * np.arange(r)[:, None]).ravel()
    return np.bincount(flat, minlength=r * m).reshape(r, m).astype(np.float32)


def _resampled_influence(
    counts: np.ndarray, centred: np.ndarray, design: np.ndarray, size: int | np.ndarray
) -> np.ndarray:
    """Difference of means of every class in every resample; NaN where a resample holds no model
    with (or none without) the class, as the mean of an empty group is. ``size``: models in each
    resample (one number, or one per resample when whole blocks of unequal size were drawn)."""
    n_in = counts @ design
    sum_in = (counts * centred) @ design
    total = counts @ centred
    n_out = np.reshape(size, (-1, 1)) - n_in
    with np.errstate(divide="ignore", invalid="ignore"):
        infl = sum_in.astype(np.float64) / n_in - (total[:, None] - sum_in.astype(np.float64)) / n_out
    infl[(n_in == 0) | (n_out == 0)] = np.nan
    return infl
