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
