"""Bootstrap standard deviation of the overall influences against the number of models (Figure 8)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
    overall = np.asarray(outputs, dtype=np.float64).mean(axis=1)
    m = masks.shape[0]
    sizes = np.unique(np.geomspace(max(8, m // 32), m, points).astype(int))
    rng = np.random.default_rng(seed)
    means = []
    for size in sizes:
        draws = rng.integers(0, m, size=(resamples, size))
        x = masks[draws].astype(np.float64)  # resamples × size × K
        y = overall[draws][:, :, None]
        n_in = x.sum(axis=1)
        n_out = size - n_in
        with np.errstate(divide="ignore", invalid="ignore"):
            infl = (x * y).sum(axis=1) / n_in - ((1 - x) * y).sum(axis=1) / n_out
        means.append(float(np.nanmean(np.nanstd(infl, axis=0))))
    return BootstrapCurve(sizes, np.asarray(means))
