"""The one dispatch from an estimator's name to its function, for every caller."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import InputError
from .dim import class_influence
from .result import InfluenceEstimate
from .ridge import datamodel_influence

ESTIMATOR_NAMES = {"dim": "difference of means", "ridge": "ridge regression on the mask"}
"""``dim``: Algorithm 1 (with a balanced design, block effects cancel by themselves); ``ridge``:
regression on the inclusion mask, with a fixed effect per block when blocks are given."""


def check_estimator(name: str) -> str:
    if name not in ESTIMATOR_NAMES:
        raise InputError(f"unknown estimator {name!r}; choose one of {sorted(ESTIMATOR_NAMES)}")
    return name


def estimate(
    estimator: str,
    masks: np.ndarray,
    outputs: np.ndarray,
    class_names: Sequence[str] | None = None,
    target_ids: Sequence[str] | None = None,
    output_kind: str | None = None,
    blocks: np.ndarray | None = None,
) -> InfluenceEstimate:
    """Influences by the named estimator. ``blocks`` (one design block per model): ridge adds a fixed
    effect per block; difference of means takes its standard errors from the independent blocks."""
    check_estimator(estimator)
    if estimator == "dim":
        return class_influence(masks, outputs, class_names, target_ids, output_kind, blocks=blocks)
    return datamodel_influence(masks, outputs, class_names, target_ids, output_kind, blocks=blocks)
