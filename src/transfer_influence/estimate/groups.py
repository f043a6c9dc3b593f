"""Aggregating target outputs into groups (all targets, each target class) before estimating.

Influence is linear in the outputs, so the influence on a group's mean output equals the mean of
the per-example influences; estimating on group means gives exact standard errors for the group,
which averaging per-example errors cannot (the examples' noise is correlated).
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError


def group_means(outputs: np.ndarray, groups: np.ndarray, num_groups: int) -> np.ndarray:
    """(m × n) outputs → (m × G) mean output per group of targets, as one matrix product."""
    counts = np.bincount(groups, minlength=num_groups).astype(np.float64)
    if (counts == 0).any():
        empty = np.flatnonzero(counts == 0).tolist()
        raise InputError(f"target groups {empty} have no examples")
    averaging = np.zeros((groups.size, num_groups), dtype=np.float32)
    averaging[np.arange(groups.size), groups] = (1.0 / counts[groups]).astype(np.float32)
    return np.asarray(outputs, dtype=np.float32) @ averaging
