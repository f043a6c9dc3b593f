"""Bootstrap standard deviation of the overall influences against the number of models (Figure 8).

A resample of N models drawn with replacement is summarised by how often it drew each model
(a row of counts): with the counts matrix C (resamples × m), C·mask gives every class's n_in and
(C ⊙ y)·mask its sum of outputs over including models, so the resampled influences are two
matrix products — never the resamples × N × K tensor that indexing the masks by the draws would
materialise (tens of GB at paper scale). Resamples are taken in chunks so that memory stays
bounded by a few m×K and chunk×max(m, K) arrays whatever the number of resamples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_CHUNK_BYTES = 8 * 2**20


@dataclass(frozen=True)
class BootstrapCurve:
    """Mean over classes of the bootstrap std of overall influences, against the number of models."""

    models: np.ndarray
    mean_std: np.ndarray


def bootstrap_std(
    masks: np.ndarray, outputs: np.ndarray, points: int = 6, resamples: int = 200, seed: int = 0
) -> BootstrapCurve:
    """Resample N of the models with replacement and recompute the overall influences (Figure 8)."""
    masks = np.asarray(masks, dtype=bool)
    m, num_classes = masks.shape
    overall = _row_means(outputs)
    # Centred outputs keep float32 sums exact enough: the influence is a difference of means, so the
    # offset cancels from it, and the counts and inclusion numbers are small integers.
    centred = (overall - overall.mean()).astype(np.float32)
    design = masks.astype(np.float32)
    sizes = np.unique(np.geomspace(max(8, m // 32), m, points).astype(int))
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_BYTES // (8 * max(m, num_classes)))
    means = []
    for size in sizes:
        draws = rng.integers(0, m, size=(resamples, size))
        infl = np.empty((resamples, num_classes))
        for start in range(0, resamples, chunk):
            counts = _draw_counts(draws[start : start + chunk], m)
            infl[start : start + chunk] = _resampled_influence(counts, centred, design, size)
        means.append(float(np.nanmean(np.nanstd(infl, axis=0))))
    return BootstrapCurve(sizes, np.asarray(means))


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


def _resampled_influence(counts: np.ndarray, centred: np.ndarray, design: np.ndarray, size: int) -> np.ndarray:
    """Difference of means of every class in every resample; NaN where a resample holds no model
    with (or none without) the class, as the mean of an empty group is."""
    n_in = counts @ design
    sum_in = (counts * centred) @ design
    total = counts @ centred
    n_out = size - n_in
    with np.errstate(divide="ignore", invalid="ignore"):
        infl = sum_in.astype(np.float64) / n_in - (total[:, None] - sum_in.astype(np.float64)) / n_out
    infl[(n_in == 0) | (n_out == 0)] = np.nan
    return infl
