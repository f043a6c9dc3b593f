"""Subset designs and run specs.

Every model's class subset is a pure function of (study seed, model index): any mask can be rebuilt
from its index alone, so a worker needs nothing but the index, and a crashed or resumed study
reproduces exactly the subsets it would have drawn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from .config import StudyConfig

# Distinct streams derived from the study seed, so that subset draws and training seeds never share
# random numbers.
_SUBSET_STREAM = 0x5B5E7
_TRAIN_STREAM = 0x7EA1
_BASELINE_STREAM = 0xBA5E


def subset_size(num_classes: int, alpha: float) -> int:
    size = int(round(alpha * num_classes))
    if not 1 <= size <= num_classes - 1:
        raise ValueError(
            f"design.alpha={alpha} gives subsets of {size} of {num_classes} classes; every subset "
            "must leave some classes in and some out — choose alpha so that 1 ≤ alpha·K ≤ K−1"
        )
    return size


def _random_subset(seed: int, draw: int, num_classes: int, size: int) -> np.ndarray:
    rng = np.random.default_rng([_SUBSET_STREAM, seed, draw])
    mask = np.zeros(num_classes, dtype=bool)
    mask[rng.choice(num_classes, size=size, replace=False)] = True
    return mask


def iid_mask(seed: int, index: int, num_classes: int, alpha: float) -> np.ndarray:
    """Independent uniformly random subsets of exactly alpha·K classes (the paper's design)."""
    return _random_subset(seed, index, num_classes, subset_size(num_classes, alpha))


def complement_mask(seed: int, index: int, num_classes: int, alpha: float) -> np.ndarray:
    """Pairs (S, S^c): models 2p and 2p+1 see complementary subsets, so every class is in exactly
    one model of each pair. This balances inclusion counts and cancels the pair's shared noise in
    the difference of means."""
    base = _random_subset(seed, index // 2, num_classes, subset_size(num_classes, alpha))
    return base if index % 2 == 0 else ~base


def design_mask(config: StudyConfig, index: int, num_classes: int) -> np.ndarray:
    kind = config.design.kind
    if kind == "iid":
        return iid_mask(config.seed, index, num_classes, config.design.alpha)
    if kind == "complement":
        return complement_mask(config.seed, index, num_classes, config.design.alpha)
    raise ValueError(f"unknown design.kind {kind!r}")


def train_seed(config: StudyConfig, index: int) -> int:
    """Seed for a model's initialisation and data order: per model, or shared ('common')."""
    key = [_TRAIN_STREAM, config.seed] if config.train.seeding == "common" else [_TRAIN_STREAM, config.seed, index]
    return int(np.random.default_rng(key).integers(0, 2**31 - 1))


RunKind = Literal["subset", "all_source", "random_init"]


@dataclass(frozen=True)
class RunSpec:
    """One unit of work: train (or not) a source model on ``mask`` and transfer it."""

    kind: RunKind
    index: int
    mask: np.ndarray
    seed: int

    @property
    def run_id(self) -> str:
        return f"{self.kind}-{self.index:06d}"


def subset_runs(config: StudyConfig, num_classes: int, indices: range | list[int]) -> list[RunSpec]:
    return [
        RunSpec("subset", i, design_mask(config, i, num_classes), train_seed(config, i)) for i in indices
    ]


def baseline_runs(config: StudyConfig, num_classes: int) -> list[RunSpec]:
    """All-source models and random-init backbones, each repeated with its own seed."""
    specs: list[RunSpec] = []
    everything = np.ones(num_classes, dtype=bool)
    for r in range(config.baselines.repeats):
        seed = int(np.random.default_rng([_BASELINE_STREAM, config.seed, r]).integers(0, 2**31 - 1))
        specs.append(RunSpec("all_source", r, everything, seed))
        specs.append(RunSpec("random_init", r, np.zeros(num_classes, dtype=bool), seed))
    return specs
