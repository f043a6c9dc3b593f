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


@pytest.mark.parametrize("kind,alpha,block", [("iid", 0.25, None), ("partition", 0.2, 5), ("complement", 0.5, 2)])
def test_unpenalised_ridge_converges_to_the_simulator_regression_truth(kind: str, alpha: float, block: int | None) -> None:
    """With strong interactions and no noise, ridge(0) lands on c − mean(c) with
    c_k = β_k + (s−1)/(K−2)·Σ_l γ_kl, far closer than on the main effects alone."""
    from transfer_influence.estimate import group_means
    from transfer_influence.study.design import DESIGNS, design_subset_size

    k, m = 24, 8_000
    sim = StudySimulator(replace(SMALL, num_classes=k, interaction_pairs=40, interaction_sd=0.1, model_noise=0,
                                 model_class_noise=0, example_noise=0))
    masks = masks_for(DESIGNS[kind], alpha, m, k)
    blocks = None if block is None else np.arange(m) // block
    fit = datamodel_influence(masks, group_means(sim.outputs(masks, 0), sim.target_labels, 4), ridge=0.0, blocks=blocks)
    truth = sim.true_influence(size=design_subset_size(kind, k, alpha), estimator="ridge")
    main_effects = group_means(sim.example_effects - sim.example_effects.mean(0), sim.target_labels, 4)
    assert np.abs(fit.values - truth).max() < 0.2 * np.abs(fit.values - main_effects).max()


def test_truth_levels_are_means_of_example_truth() -> None:
    sim = StudySimulator(SMALL)
    ex = sim.true_influence(0.5, "example")
    np.testing.assert_allclose(sim.true_influence(0.5, "overall")[:, 0], ex.mean(axis=1), atol=1e-12)
    np.testing.assert_allclose(sim.true_influence(0.5, "target_class")[:, 1], ex[:, sim.target_labels == 1].mean(axis=1), atol=1e-7)


def test_partition_design_balances_classes() -> None:
    """K = 23, alpha = 0.2: every model holds ⌊23/5⌋ = 4 classes, each class is in at most one
    model of a block, and 23 mod 5 = 3 classes sit out of each block."""
    masks = masks_for(partition_mask, 0.2, 50, 23)
    assert set(masks.sum(axis=1)) == {4}
    per_block = masks.reshape(10, 5, 23).sum(axis=1)
    assert per_block.max() == 1 and set(per_block.sum(axis=1)) == {20}
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
    assert fdr.share_positive[4] <= 0.2  # the 5 real classes rank above nearly all knockoffs
    assert fdr.fdr_plus_positive[4] <= 0.4
    found = significant_classes(class_influence(masks, y.mean(1, keepdims=True)), 0, 0.1)
    # With fixed-size subsets a null class displaces others, so its influence is slightly negative:
    # only the real classes may come out significantly positive.
    assert {name for name, value, _ in found if value > 0} == {"0", "1", "2", "3", "4"}
    null = rng.normal(size=(m, 20))
    assert len(significant_classes(class_influence(masks, null.mean(1, keepdims=True)), 0, 0.1)) <= 2
    assert knockoff_fdr(masks, fakes, null).fdr_plus_positive[4] >= 0.2


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


class _RecordingFitter:
    """Stands in for an estimator and records the rows' blocks of every fit it is asked for."""

    def __init__(self, name: str) -> None:
        from transfer_influence.evaluate.reliability import fitter_for

        self.fit = fitter_for(name)
        self.blocks_seen: list[np.ndarray] = []

    def __call__(self, masks: np.ndarray, outputs: np.ndarray, blocks: np.ndarray | None):  # type: ignore[no-untyped-def]
        self.blocks_seen.append(np.asarray(blocks))
        return self.fit(masks, outputs, blocks)


def _whole_blocks(seen: np.ndarray, blocks: np.ndarray) -> bool:
    ids, counts = np.unique(seen, return_counts=True)
    return bool(all(counts[i] == (blocks == b).sum() for i, b in enumerate(ids)))


@pytest.mark.parametrize("m", [400, 402])
@pytest.mark.parametrize("estimator", ["dim", "ridge"])
def test_split_halves_and_held_out_sets_hold_whole_blocks(monkeypatch, m: int, estimator: str) -> None:
    """Blocks of 4 (the last one short when m = 402): no half, at any size on the curve, and no
    held-out split may cut through a block."""
    from transfer_influence.evaluate import reliability

    sim = StudySimulator(SMALL)
    masks = masks_for(partition_mask, 0.25, m, 16)
    blocks = np.arange(m) // 4
    recorder = _RecordingFitter(estimator)
    monkeypatch.setattr(reliability, "fitter_for", lambda name: recorder)
    curves = split_half_reliability(masks, sim.outputs(masks, 0), sim.target_labels, 4, estimator, repeats=2, blocks=blocks)
    assert len(recorder.blocks_seen) >= 2 * 2 * 3 * 3  # sizes × halves × levels × repeats
    assert all(_whole_blocks(seen, blocks) for seen in recorder.blocks_seen)
    h = curves["target_class"].models_per_half
    assert h[-1] >= 196 and (m == 402 or (h % 4 == 0).all())
    recorder.blocks_seen.clear()
    held_out_spearman(masks, sim.outputs(masks, 0), sim.target_labels, 4, estimator, blocks=blocks)
    training = recorder.blocks_seen
    assert training and all(_whole_blocks(seen, blocks) for seen in training)
    held = np.setdiff1d(blocks, training[0])
    assert abs(np.isin(blocks, held).sum() - m / 4) <= 4  # about a quarter of the models, in whole blocks


def test_a_single_block_gives_no_split_half_point_and_no_held_out_score() -> None:
    """Ten models in one partition block cannot be halved without cutting the block."""
    sim = StudySimulator(replace(SMALL, num_classes=20))
    masks = masks_for(partition_mask, 0.1, 10, 20)
    y, blocks = sim.outputs(masks, 0), np.zeros(10, int)
    curve = split_half_reliability(masks, y, sim.target_labels, 4, blocks=blocks)["target_class"]
    assert curve.models_per_half.size == 0 and np.isnan(curve.at_full_size)
    assert all(np.isnan(v) for v in held_out_spearman(masks, y, sim.target_labels, 4, blocks=blocks).values())


def _knockoff_runs(sim: StudySimulator, reps: int, m: int = 300) -> list:  # type: ignore[type-arg]
    k = sim.spec.num_classes
    runs = []
    for rep in range(reps):
        masks = masks_for(iid_mask, 0.5, m, k, seed=rep)
        fakes = masks_for(iid_mask, 0.5, m, k, seed=10_000 + rep)
        runs.append(knockoff_fdr(masks, fakes, sim.outputs(masks, rep)))
    return runs


def test_knockoff_share_is_the_papers_statistic_chance_without_effects_and_zero_with_strong_ones() -> None:
    """Paper App. F: the share of knockoffs among the joint top k is 0.5 by chance and near 0
    when the top k are real effects."""
    quiet = SimulatorSpec(
        num_classes=30, num_target_classes=3, examples_per_class=10, effect_sd=0.0, example_effect_sd=0.0,
        interaction_pairs=0, relevant_per_target_class=2, relevant_effect=0.0,
    )
    null = _knockoff_runs(StudySimulator(quiet), 60)
    share = np.mean([run.share_positive for run in null], axis=0)
    assert abs(share[2:].mean() - 0.5) < 0.03  # k = 3..15
    assert abs(np.mean([run.share_negative for run in null]) - 0.5) < 0.03
    strong = StudySimulator(replace(quiet, relevant_effect=0.1))
    assert (strong.class_effects.mean(axis=1) > 0).sum() >= 4
    runs = _knockoff_runs(strong, 20)
    assert np.mean([run.share_positive[:4] for run in runs]) < 0.02


def test_knockoff_plus_estimate_is_at_least_the_true_fdr_on_average() -> None:
    """Known null classes (6 positive, 6 negative effects, 18 exactly zero): averaged over studies,
    (1 + knockoffs above the k-th real class)/k is no smaller than the true share of null classes
    among the top k real classes, on both sides and at every k."""
    k, m = 30, 400
    effects = np.zeros(k)
    effects[:6] = np.linspace(0.004, 0.03, 6)
    effects[6:12] = -effects[:6]
    estimates, truths = [], []
    for rep in range(100):
        masks = masks_for(iid_mask, 0.5, m, k, seed=rep)
        fakes = masks_for(iid_mask, 0.5, m, k, seed=10_000 + rep)
        y = (masks @ effects)[:, None] + np.random.default_rng(rep).normal(0, 0.05, size=(m, 5))
        run = knockoff_fdr(masks, fakes, y)
        joint = class_influence(np.concatenate([masks, fakes], axis=1), y.mean(1, keepdims=True).astype(np.float32))
        real = joint.values[:k, 0]
        top_positive = np.cumsum(effects[np.argsort(-real, kind="stable")] <= 0)[run.top_k - 1] / run.top_k
        top_negative = np.cumsum(effects[np.argsort(real, kind="stable")] >= 0)[run.top_k - 1] / run.top_k
        estimates.append([run.fdr_plus_positive, run.fdr_plus_negative])
        truths.append([top_positive, top_negative])
    mean_estimate, mean_truth = np.mean(estimates, axis=0), np.mean(truths, axis=0)
    assert (mean_estimate >= mean_truth - 0.02).all()
    assert (mean_truth[:, -1] > 0.4).all()  # the check reaches well into false discoveries


def _bootstrap_by_indexing(masks: np.ndarray, outputs: np.ndarray, points: int, resamples: int, seed: int) -> np.ndarray:
    """The direct formula — index the masks by the draws (resamples × N × K) — for small cases."""
    masks = np.asarray(masks, dtype=bool)
    overall = np.asarray(outputs, dtype=np.float64).mean(axis=1)
    m = masks.shape[0]
    sizes = np.unique(np.geomspace(max(8, m // 32), m, points).astype(int))
    rng = np.random.default_rng(seed)
    means = []
    for size in sizes:
        draws = rng.integers(0, m, size=(resamples, size))
        x = masks[draws].astype(np.float64)
        y = overall[draws][:, :, None]
        n_in = x.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            infl = (x * y).sum(axis=1) / n_in - ((1 - x) * y).sum(axis=1) / (size - n_in)
        means.append(float(np.nanmean(np.nanstd(infl, axis=0))))
    return np.asarray(means)


def test_bootstrap_std_equals_the_direct_formula() -> None:
    sim = StudySimulator(SMALL)
    masks = masks_for(iid_mask, 0.25, 300, 16)
    outputs = sim.outputs(masks, 0)
    curve = bootstrap_std(masks, outputs, points=5, resamples=60, seed=7)
    np.testing.assert_allclose(curve.mean_std, _bootstrap_by_indexing(masks, outputs, 5, 60, 7), rtol=1e-5)


def test_bootstrap_std_memory_stays_bounded_at_scale() -> None:
    """m = 2,000 models, K = 1,000 classes, 200 resamples: indexing the masks by the draws would
    hold 200 × 2,000 × 1,000 float64 (3.2 GB); the counts route stays within tens of MB."""
    import tracemalloc

    rng = np.random.default_rng(0)
    masks = rng.random((2_000, 1_000)) < 0.5
    outputs = rng.random((2_000, 4)).astype(np.float32)
    tracemalloc.start()
    try:
        curve = bootstrap_std(masks, outputs, resamples=200)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 40 * 2**20
    assert np.isfinite(curve.mean_std).all()


def test_saved_diagnostics_name_the_knockoff_statistics(tmp_path) -> None:
    import json

    from transfer_influence.analysis.convergence import Diagnostics

    k, m = 12, 200
    masks, fakes = masks_for(iid_mask, 0.5, m, k), masks_for(iid_mask, 0.5, m, k, seed=5)
    diag = Diagnostics(m, 0.8, knockoffs=knockoff_fdr(masks, fakes, np.random.default_rng(0).normal(size=(m, 3))))
    diag.save(tmp_path / "diagnostics.json")
    saved = json.loads((tmp_path / "diagnostics.json").read_text())["knockoffs"]
    assert saved["knockoff_share_positive"] == diag.knockoffs.share_positive.tolist()
    assert saved["knockoff_plus_fdr_negative"] == diag.knockoffs.fdr_plus_negative.tolist()
    assert "Figure 30" in saved["definitions"]["knockoff_share"] and "fdr_positive" not in saved


def test_report_text_names_the_papers_knockoff_statistic(tmp_path) -> None:
    from transfer_influence.analysis.convergence import Diagnostics
    from transfer_influence.report.page import _diagnostics_html

    sim = StudySimulator(SMALL)
    masks, fakes = masks_for(iid_mask, 0.5, 200, 16), masks_for(iid_mask, 0.5, 200, 16, seed=5)
    y = sim.outputs(masks, 0)
    diag = Diagnostics(200, 0.8, knockoffs=knockoff_fdr(masks, fakes, y))
    diag.reliability[("p_true", "dim")] = split_half_reliability(masks, y, sim.target_labels, 4, repeats=1)
    for name in ("reliability.png", "bootstrap_knockoffs.png"):
        (tmp_path / name).write_bytes(b"png")
    text = " ".join(_diagnostics_html(diag, 0.5, "p_true", "dim", tmp_path).split())
    assert "the share of knockoffs among the top k of that joint ranking" in text and "0.5 is chance" in text
    assert f"at k = 2 it is {diag.knockoffs.share_positive[1]:.2f} for the most positive" in text  # K/10 of 16
    assert "knockoff+ estimate" in text and "(1 + knockoffs ranked above the k-th real class)/k" in text
