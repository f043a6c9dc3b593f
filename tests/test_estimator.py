"""Algorithm 1 against a brute-force loop, its standard errors, and its input checks."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from transfer_influence import class_influence


def brute_force(masks: np.ndarray, outputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    m, k = masks.shape
    n = outputs.shape[1]
    values = np.zeros((k, n))
    stderr = np.zeros((k, n))
    for c in range(k):
        for j in range(n):
            inside = outputs[masks[:, c] == 1, j].astype(np.float64)
            outside = outputs[masks[:, c] == 0, j].astype(np.float64)
            values[c, j] = inside.mean() - outside.mean()
            pooled = (((inside - inside.mean()) ** 2).sum() + ((outside - outside.mean()) ** 2).sum()) / (m - 2)
            stderr[c, j] = np.sqrt(pooled * (1 / inside.size + 1 / outside.size))
    return values, stderr


@pytest.mark.parametrize(
    "m,k,n,p,block",
    [(40, 6, 9, 0.5, None), (3, 2, 4, 0.5, None), (57, 11, 23, 0.2, 5), (25, 4, 1, 0.8, 1)],
)
def test_matches_brute_force(m: int, k: int, n: int, p: float, block: int | None) -> None:
    rng = np.random.default_rng(m * 1000 + k)
    masks = rng.random((m, k)) < p
    masks[0], masks[1] = True, False  # every class both in and out
    outputs = rng.normal(0.5, 0.2, size=(m, n)).astype(np.float32)
    result = class_influence(masks, outputs, block_targets=block)
    values, stderr = brute_force(masks, outputs)
    np.testing.assert_allclose(result.values, values, atol=2e-6)
    np.testing.assert_allclose(result.stderr, stderr, atol=2e-6)
    np.testing.assert_array_equal(result.n_in, masks.sum(0))
    np.testing.assert_array_equal(result.n_out, m - masks.sum(0))


def test_stderr_is_the_pooled_t_test() -> None:
    rng = np.random.default_rng(1)
    masks = rng.random((80, 5)) < 0.5
    outputs = rng.normal(size=(80, 3)) + 0.4 * masks[:, [0]]
    result = class_influence(masks, outputs)
    for c in range(5):
        for j in range(3):
            t = stats.ttest_ind(outputs[masks[:, c], j], outputs[~masks[:, c], j], equal_var=True).statistic
            assert result.z_scores[c, j] == pytest.approx(t, rel=1e-4, abs=1e-5)


def test_constant_outputs_and_integer_masks_and_memmap(tmp_path) -> None:
    masks = np.array([[1, 0], [0, 1], [1, 1], [0, 0]], dtype=np.int8)
    path = tmp_path / "y.npy"
    y = np.lib.format.open_memmap(path, "w+", np.float32, (4, 3))
    y[:] = 0.25
    y[:, 1] = [1.0, 0.0, 1.0, 0.0]
    y.flush()
    result = class_influence(masks, np.load(path, mmap_mode="r"), class_names=["a", "b"], target_ids=["x", "y", "z"])
    np.testing.assert_allclose(result.values[:, 0], 0.0, atol=1e-7)
    np.testing.assert_allclose(result.stderr[:, 0], 0.0, atol=1e-7)
    assert result.values[0, 1] == pytest.approx(1.0)
    assert result.values[1, 1] == pytest.approx(0.0)
    assert result.column("y")[0] == pytest.approx(1.0)
    assert result.unit_names == ("a", "b") and result.num_models == 4


def test_large_offsets_keep_precision() -> None:
    rng = np.random.default_rng(2)
    masks = rng.random((500, 3)) < 0.5
    outputs = 1000.0 + 1e-3 * masks[:, [0]] + 1e-4 * rng.normal(size=(500, 2))
    result = class_influence(masks, outputs.astype(np.float32))
    values, _ = brute_force(masks, outputs.astype(np.float32))
    np.testing.assert_allclose(result.values, values, atol=2e-5)


@pytest.mark.parametrize(
    "masks,outputs,message",
    [
        (np.ones((5, 2), bool), np.zeros((5, 3)), "in every subset"),
        (np.zeros((5, 2), bool), np.zeros((5, 3)), "in no subset"),
        (np.eye(4, dtype=bool)[:, :2] | np.array([[0, 0], [0, 0], [1, 0], [0, 1]], bool), np.zeros((3, 2)), "4 models"),
        (np.array([[1, 0], [0, 1], [1, 1]], bool), np.array([[0.1], [np.nan], [0.2]]), "NaN or inf"),
        (np.array([[1, 0], [0, 1], [1, 1]], bool), np.array([[0.1], [np.inf], [0.2]]), "NaN or inf"),
        (np.array([[2, 0], [0, 1], [1, 1]]), np.zeros((3, 1)), "0 and 1"),
        (np.zeros(5, bool), np.zeros((5, 1)), "2-D"),
        (np.array([[1, 0], [0, 1]], bool), np.zeros((2, 1)), "at least 3 models"),
    ],
)
def test_bad_input_raises_clear_error(masks: np.ndarray, outputs: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        class_influence(masks, outputs)


def test_label_lengths_checked() -> None:
    masks = np.array([[1, 0], [0, 1], [1, 1], [0, 0]], bool)
    with pytest.raises(ValueError, match="class names"):
        class_influence(masks, np.zeros((4, 2)), class_names=["only one"])
    with pytest.raises(ValueError, match="target ids"):
        class_influence(masks, np.zeros((4, 2)), target_ids=["t"])


def test_estimator_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = "import sys, transfer_influence as t; t.class_influence; t.open_study; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def _cluster_robust_brute_force(masks: np.ndarray, outputs: np.ndarray, blocks: np.ndarray) -> np.ndarray:
    """G/(G−1)·Σ_b (Σ_{i∈b} w_i·e_i)² class by class and target by target, with plain loops."""
    m, k = masks.shape
    ids = np.unique(blocks)
    stderr = np.zeros((k, outputs.shape[1]))
    for c in range(k):
        inside = masks[:, c].astype(bool)
        weight = np.where(inside, 1 / inside.sum(), -1 / (~inside).sum())
        for j in range(outputs.shape[1]):
            y = outputs[:, j].astype(np.float64)
            residual = np.where(inside, y - y[inside].mean(), y - y[~inside].mean())
            scores = [(weight * residual)[blocks == b].sum() for b in ids]
            stderr[c, j] = np.sqrt(ids.size / (ids.size - 1) * np.sum(np.square(scores)))
    return stderr


def test_block_standard_errors_of_complement_pairs_are_the_paired_t_test() -> None:
    rng = np.random.default_rng(3)
    first = rng.random((30, 6)) < 0.5
    masks = np.empty((60, 6), bool)
    masks[0::2], masks[1::2] = first, ~first
    outputs = rng.normal(size=(60, 4)) + 0.3 * masks[:, [2]] + rng.normal(size=(30, 1)).repeat(2, axis=0)
    blocks = np.arange(60) // 2
    result = class_influence(masks, outputs, blocks=blocks)
    np.testing.assert_allclose(result.values, class_influence(masks, outputs).values, atol=1e-6)
    assert result.dof == 29
    for c in range(6):
        held = np.where(masks[0::2, c], 0, 1)  # which model of each pair holds class c
        inside = outputs[np.arange(0, 60, 2) + held]
        outside = outputs[np.arange(0, 60, 2) + 1 - held]
        t = stats.ttest_rel(inside, outside).statistic
        np.testing.assert_allclose(result.z_scores[c], t, rtol=1e-4)


def test_block_standard_errors_with_ragged_blocks_and_sit_outs_match_brute_force() -> None:
    rng = np.random.default_rng(4)
    blocks = np.repeat(np.arange(12), rng.integers(1, 5, size=12))  # blocks of 1 to 4 models
    m = blocks.size
    masks = rng.random((m, 7)) < 0.4
    masks[0], masks[1] = True, False
    outputs = (rng.normal(size=(m, 5)) + rng.normal(size=(12, 1))[blocks]).astype(np.float32)
    result = class_influence(masks, outputs, blocks=blocks, block_targets=2)
    np.testing.assert_allclose(result.stderr, _cluster_robust_brute_force(masks, outputs, blocks), rtol=2e-5, atol=1e-7)
    assert result.dof == 11


def test_one_block_falls_back_to_pooled_errors_and_bad_blocks_are_refused() -> None:
    rng = np.random.default_rng(5)
    masks = rng.random((20, 3)) < 0.5
    masks[0], masks[1] = True, False
    outputs = rng.normal(size=(20, 2))
    pooled = class_influence(masks, outputs)
    single = class_influence(masks, outputs, blocks=np.zeros(20, int))
    np.testing.assert_array_equal(single.stderr, pooled.stderr)
    assert single.dof == pooled.dof == 18
    with pytest.raises(ValueError, match="one design block id per model"):
        class_influence(masks, outputs, blocks=np.zeros(19, int))


def test_ridge_errors_count_one_degree_of_freedom_per_block() -> None:
    """Unpenalised ridge with blocks is OLS on block dummies and the mask: same coefficients, and
    the classical OLS errors with m − G − K residual degrees of freedom."""
    from transfer_influence.estimate.ridge import datamodel_influence

    rng = np.random.default_rng(6)
    m, k, g = 90, 5, 45
    masks = rng.random((m, k)) < 0.5
    blocks = np.arange(m) // 2
    outputs = masks @ rng.normal(size=(k, 3)) + rng.normal(size=(g, 1))[blocks] + rng.normal(size=(m, 3))
    fit = datamodel_influence(masks, outputs, ridge=0.0, blocks=blocks)
    design = np.column_stack([np.eye(g)[blocks], masks])
    coef, rss = np.linalg.lstsq(design, outputs, rcond=None)[:2]
    dof = m - g - k
    sigma2 = rss / dof
    covariance_diag = np.diag(np.linalg.inv(design.T @ design))[g:]
    assert fit.dof == pytest.approx(dof)
    np.testing.assert_allclose(fit.values, coef[g:], atol=1e-5)
    np.testing.assert_allclose(fit.stderr, np.sqrt(np.outer(covariance_diag, sigma2)), rtol=1e-4)
    no_blocks = datamodel_influence(masks, outputs, ridge=0.0)
    assert no_blocks.dof == pytest.approx(m - 1 - k)


def test_ridge_gcv_divides_by_the_residual_dof_left_after_the_block_effects() -> None:
    """The chosen penalty minimises RSS/(m − G − tr H)² over the grid, scored by brute force."""
    from transfer_influence.estimate.ridge import PENALTY_GRID, datamodel_influence

    rng = np.random.default_rng(0)
    m, k = 60, 20
    first = rng.random((m // 2, k)) < 0.5
    masks = np.empty((m, k), bool)
    masks[0::2], masks[1::2] = first, ~first
    blocks = np.arange(m) // 2
    outputs = masks @ rng.normal(0, 0.3, size=(k, 3)) + rng.normal(size=(m, 3))
    within = outputs - (outputs[0::2] + outputs[1::2]).repeat(2, axis=0) / 2
    centred_masks = masks - (masks[0::2].astype(float) + masks[1::2]).repeat(2, axis=0) / 2
    singular = np.linalg.svd(centred_masks, compute_uv=False)
    singular = singular[singular > 1e-9 * singular.max()]
    scores, fits = [], []
    for ridge in PENALTY_GRID:
        fit = datamodel_influence(masks, outputs, ridge=ridge, blocks=blocks)
        residual_dof = m - m // 2 - float((singular**2 / (singular**2 + ridge * m)).sum())
        assert fit.dof == pytest.approx(residual_dof)
        rss = ((within - centred_masks @ fit.values.astype(np.float64)) ** 2).sum()
        scores.append(rss / residual_dof**2)
        fits.append(fit)
    best = fits[int(np.argmin(scores))]
    np.testing.assert_allclose(datamodel_influence(masks, outputs, blocks=blocks).values, best.values, atol=1e-7)


def test_block_errors_shortcut_for_balanced_blocks_matches_brute_force() -> None:
    """Partition blocks with sit-outs (each class in at most one model of a block) take the
    two-product shortcut; it must give the cluster-robust errors of the general formula."""
    from transfer_influence.study.design import partition_mask

    masks = np.stack([partition_mask(2, i, 23, 0.25) for i in range(48)])  # blocks of 4, 5 classes each, 3 sit out
    blocks = np.arange(48) // 4
    rng = np.random.default_rng(5)
    outputs = (masks[:, :3] @ rng.normal(size=(3, 6)) + rng.normal(size=(12, 1))[blocks] + rng.normal(size=(48, 6)))
    outputs = outputs.astype(np.float32)
    result = class_influence(masks, outputs, blocks=blocks)
    np.testing.assert_allclose(result.stderr, _cluster_robust_brute_force(masks, outputs, blocks), rtol=2e-5, atol=1e-7)
    assert result.dof == 11
