"""Coverage of the 95% intervals of both estimators against the simulator's exact estimands.

Every design gives each model a uniformly random subset of one size (round(α·K) for iid, K/2 for
complement pairs, ⌊α·K⌋ for partition blocks), so the simulator knows both estimands exactly:
difference of means (``dim``) and the unpenalised regression on the mask (``ridge=0``, effects
relative to the average class). K = 48 with α = 0.1 makes the partition size (4) differ from
round(α·K) = 5; the truth is always computed for the design's own size.

Each design is simulated STUDIES times with fresh training noise and fresh subsets; coverage is
pooled over the 48 classes × 10 target classes of every study (48,000 intervals per design), which
pins it to about ±0.2% (two standard errors across studies). Blocked designs pass their blocks to
both estimators: ridge fits a fixed effect per block, difference of means takes its standard error
from the blocks.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Callable

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from transfer_influence.estimate import InfluenceEstimate, class_influence, datamodel_influence, group_means
from transfer_influence.evaluate.simulate import SimulatorSpec, StudySimulator
from transfer_influence.study.design import complement_mask, design_subset_size, iid_mask, partition_mask

SPEC = SimulatorSpec(num_classes=48, num_target_classes=10, examples_per_class=4, seed=1)
MODELS = 240
STUDIES = 100

Design = tuple[Callable[[int, int, int, float], np.ndarray], str, float, int | None]
DESIGNS: dict[str, Design] = {
    "iid α=0.5": (iid_mask, "iid", 0.5, None),
    "iid α=0.1": (iid_mask, "iid", 0.1, None),
    "complement α=0.5": (complement_mask, "complement", 0.5, 2),
    "partition α=0.1": (partition_mask, "partition", 0.1, 10),
    "partition α=0.5": (partition_mask, "partition", 0.5, 2),
}


@lru_cache(maxsize=None)
def _studies(design: str, shared_block_sd: float) -> list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """(masks, target-class outputs, blocks) of STUDIES simulated studies of one design.

    ``shared_block_sd`` adds a shift shared by the models of a block, as ``train.seeding: block``
    gives them: it cancels from balanced comparisons, so an error that ignores blocks overstates.
    """
    mask_fn, _, alpha, block_size = DESIGNS[design]
    sim = StudySimulator(SPEC)
    studies = []
    for study in range(STUDIES):
        masks = np.array([mask_fn(study, i, SPEC.num_classes, alpha) for i in range(MODELS)])
        outputs = group_means(sim.outputs(masks, 10_000 + study), sim.target_labels, SPEC.num_target_classes)
        blocks = None if block_size is None else np.arange(MODELS) // block_size
        if shared_block_sd and blocks is not None:
            shifts = np.random.default_rng(study).normal(0, shared_block_sd, size=blocks.max() + 1)
            outputs = outputs + shifts[blocks][:, None]
        studies.append((masks, outputs, blocks))
    return studies


def _fit(estimator: str, masks: np.ndarray, outputs: np.ndarray, blocks: np.ndarray | None) -> InfluenceEstimate:
    if estimator == "dim":
        return class_influence(masks, outputs, blocks=blocks)
    return datamodel_influence(masks, outputs, ridge=0.0, blocks=blocks)


def coverage(design: str, estimator: str, shared_block_sd: float = 0.0) -> float:
    """Share of 95% t intervals that hold the simulator's exact estimand, over all studies.

    One BLAS thread: the matrices are tiny, and on a busy machine extra BLAS threads only wait
    on each other."""
    _, kind, alpha, _ = DESIGNS[design]
    size = design_subset_size(kind, SPEC.num_classes, alpha)
    truth = StudySimulator(SPEC).true_influence(size=size, estimator=estimator)
    hits = []
    with threadpool_limits(1):
        for masks, outputs, blocks in _studies(design, shared_block_sd):
            low, high = _fit(estimator, masks, outputs, blocks).interval(0.95)
            hits.append(((low <= truth) & (truth <= high)).mean())
    return float(np.mean(hits))


@pytest.mark.parametrize("estimator", ["dim", "ridge"])
@pytest.mark.parametrize("design", list(DESIGNS))
def test_95_percent_intervals_cover_the_truth(design: str, estimator: str) -> None:
    assert 0.93 <= coverage(design, estimator) <= 0.97


@pytest.mark.parametrize("estimator", ["dim", "ridge"])
def test_coverage_holds_with_a_seed_shared_by_each_block(estimator: str) -> None:
    assert 0.93 <= coverage("partition α=0.1", estimator, shared_block_sd=0.05) <= 0.97


def test_partition_truth_uses_the_designs_floor_size() -> None:
    """⌊α·K⌋ and round(α·K) differ here, and so do the estimands (with interactions)."""
    sim = StudySimulator(SPEC)
    floor_size = design_subset_size("partition", SPEC.num_classes, 0.1)
    assert floor_size == 4 and round(0.1 * SPEC.num_classes) == 5
    assert not np.allclose(sim.true_influence(size=floor_size), sim.true_influence(0.1))
    np.testing.assert_array_equal(sim.true_influence(0.1), sim.true_influence(size=5))
