"""Simulator ground truth, ridge datamodels, designs and convergence diagnostics."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from transfer_influence import class_influence
from transfer_influence.estimate.ridge import datamodel_influence
from transfer_influence.evaluate.bootstrap import bootstrap_std
from transfer_influence.evaluate.fdr import knockoff_fdr, significant_classes
from transfer_influence.evaluate.reliability import held_out_spearman, split_half_reliability
from transfer_influence.study.design import iid_mask, partition_block_size, partition_mask
from transfer_influence.evaluate.simulate import SimulatorSpec, StudySimulator

SMALL = SimulatorSpec(num_classes=16, num_target_classes=4, examples_per_class=10, interaction_pairs=10)


def masks_for(design, alpha: float, m: int, k: int, seed: int = 0) -> np.ndarray:
    return np.array([design(seed, i, k, alpha) for i in range(m)])


@pytest.mark.parametrize("design,alpha", [(iid_mask, 0.5), (iid_mask, 0.25), (partition_mask, 0.25)])
def test_difference_of_means_converges_to_the_simulator_truth(design, alpha: float) -> None:
    sim = StudySimulator(replace(SMALL, model_noise=0, model_class_noise=0, example_noise=0, interaction_sd=0.05))
    truth = sim.true_influence(alpha, "example")
    errors = []
    for m in (2_000, 32_000):
        masks = masks_for(design, alpha, m, 16)
        errors.append(np.sqrt(((class_influence(masks, sim.outputs(masks, 0)).values - truth) ** 2).mean()))
    assert errors[1] < errors[0] / 2.5  # the error is sampling noise (1/√m), not bias
    assert errors[1] < 0.05 * np.abs(truth).max()


def test_truth_levels_are_means_of_example_truth() -> None:
    sim = StudySimulator(SMALL)
    ex = sim.true_influence(0.5, "example")
    np.testing.assert_allclose(sim.true_influence(0.5, "overall")[:, 0], ex.mean(axis=1), atol=1e-12)
    np.testing.assert_allclose(sim.true_influence(0.5, "target_class")[:, 1], ex[:, sim.target_labels == 1].mean(axis=1), atol=1e-7)


def test_partition_design_balances_classes() -> None:
    masks = masks_for(partition_mask, 0.2, 50, 23)
    np.testing.assert_array_equal(masks.sum(axis=0), np.full(23, 10))
    assert set(masks.sum(axis=1)) <= {4, 5}
    with pytest.raises(ValueError, match="whole number"):
        partition_block_size(0.3)


def test_ridge_without_penalty_is_least_squares_and_recovers_linear_effects() -> None:
    rng = np.random.default_rng(0)
    masks = rng.random((300, 6)) < 0.5
    beta = rng.normal(size=(6, 3))
    y = 2.0 + masks @ beta + 0.01 * rng.normal(size=(300, 3))
    fit = datamodel_influence(masks, y, ridge=0.0)
    np.testing.assert_allclose(fit.values, beta, atol=0.01)
    x = np.column_stack([np.ones(300), masks])
    ols = np.linalg.lstsq(x, y, rcond=None)[0][1:]
    np.testing.assert_allclose(fit.values, ols, atol=1e-5)
    assert (fit.stderr > 0).all() and (fit.stderr < 0.01).all()
    shrunk = datamodel_influence(masks, y, ridge=10.0)
    assert np.abs(shrunk.values).sum() < np.abs(fit.values).sum()


def test_split_half_reliability_grows_with_models_and_projects() -> None:
    sim = StudySimulator(SMALL)
    masks = masks_for(iid_mask, 0.5, 400, 16)
    y = sim.outputs(masks, 1)
    curves = split_half_reliability(masks, y, sim.target_labels, 4, "dim", repeats=3)
    tc = curves["target_class"]
    assert tc.spearman[-1] > tc.spearman[0]
    assert 0 < tc.at_full_size < 1
    assert tc.models_for(0.9) > tc.models_for(0.5)
    assert abs(tc.predicted(tc.models_per_half[-1]) - tc.at_full_size) < 0.15
    noisier = split_half_reliability(masks, sim.with_noise_scale(4).outputs(masks, 1), sim.target_labels, 4, repeats=3)
    assert noisier["target_class"].at_full_size < tc.at_full_size


def test_held_out_spearman_is_high_without_noise_and_low_with_only_noise() -> None:
    sim = StudySimulator(SMALL)
    masks = masks_for(iid_mask, 0.5, 300, 16)
    clean = StudySimulator(replace(SMALL, model_noise=0, model_class_noise=0, example_noise=0))
    assert held_out_spearman(masks, clean.outputs(masks, 0), sim.target_labels, 4)["target_class"] > 0.9
    noise = np.random.default_rng(0).normal(size=(300, sim.num_targets)).astype(np.float32)
    assert abs(held_out_spearman(masks, noise, sim.target_labels, 4)["target_class"]) < 0.2


def test_knockoff_fdr_and_significance_separate_real_effects_from_null() -> None:
    k, m = 30, 600
    masks = masks_for(iid_mask, 0.5, m, k)
    fakes = masks_for(iid_mask, 0.5, m, k, seed=99)
    rng = np.random.default_rng(0)
    effects = np.zeros(k)
    effects[:5] = 0.05
    y = (masks @ effects)[:, None] + rng.normal(0, 0.05, size=(m, 20))
    fdr = knockoff_fdr(masks, fakes, y)
    assert fdr.fdr_positive[4] <= 0.2  # the 5 real classes rank above nearly all knockoffs
    found = significant_classes(class_influence(masks, y.mean(1, keepdims=True)), 0, 0.1)
    # With fixed-size subsets a null class displaces others, so its influence is slightly negative:
    # only the real classes may come out significantly positive.
    assert {name for name, value, _ in found if value > 0} == {"0", "1", "2", "3", "4"}
    null = rng.normal(size=(m, 20))
    assert len(significant_classes(class_influence(masks, null.mean(1, keepdims=True)), 0, 0.1)) <= 2
    assert knockoff_fdr(masks, fakes, null).fdr_positive[4] >= 0.2


def test_bootstrap_std_shrinks_like_one_over_root_m() -> None:
    sim = StudySimulator(SMALL)
    masks = masks_for(iid_mask, 0.5, 800, 16)
    curve = bootstrap_std(masks, sim.outputs(masks, 0), resamples=100)
    ratio = curve.mean_std[0] / curve.mean_std[-1]
    expected = np.sqrt(curve.models[-1] / curve.models[0])
    assert 0.7 * expected < ratio < 1.3 * expected


def test_block_effects_cancel_in_balanced_designs_and_ridge_absorbs_them() -> None:
    """A shared per-block shift (block seeding) must not move either estimator."""
    from transfer_influence.estimate import group_means

    sim = StudySimulator(replace(SMALL, model_noise=0, model_class_noise=0, example_noise=0))
    alpha, m = 0.25, 400
    masks = masks_for(partition_mask, alpha, m, 16)
    blocks = np.arange(m) // 4
    clean = group_means(sim.outputs(masks, 0), sim.target_labels, 4)
    shifted = clean + np.random.default_rng(0).normal(0, 0.5, size=blocks.max() + 1)[blocks][:, None]
    np.testing.assert_allclose(class_influence(masks, shifted).values, class_influence(masks, clean).values, atol=1e-4)
    with_blocks = datamodel_influence(masks, shifted, blocks=blocks, ridge=0.0).values
    np.testing.assert_allclose(with_blocks, datamodel_influence(masks, clean, blocks=blocks, ridge=0.0).values, atol=1e-4)
    curves = split_half_reliability(masks, sim.outputs(masks, 0) + 0, sim.target_labels, 4, "ridge", blocks=blocks, repeats=2)
    assert curves["target_class"].at_full_size > 0.5


def test_block_seeding_shares_seeds_within_blocks(tiny_config) -> None:
    from transfer_influence.study.design import train_seed

    config = tiny_config.with_overrides(**{"design.kind": "partition", "design.alpha": 0.25, "train.seeding": "block"})
    seeds = [train_seed(config, i) for i in range(12)]
    assert seeds[0:4] == [seeds[0]] * 4 and seeds[4:8] == [seeds[4]] * 4 and len(set(seeds)) == 3
