"""The transfer head: its fit reaches the penalised optimum, on one BLAS thread.

The optimality check is independent of the head's own objective code: it recomputes the gradient of
mean cross-entropy + ½·l2·‖W‖² (bias unpenalised) with scipy's log_softmax and asks that it vanish,
and compares the head's probabilities with a solve run far past the head's stopping rule.
"""

from __future__ import annotations

import numpy as np
import pytest
import threadpoolctl
from scipy.optimize import minimize
from scipy.special import log_softmax, softmax

from transfer_influence.train import transfer
from transfer_influence.train.transfer import LinearHead


def few_shot_problem(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Correlated features of the demo's shape: 100 training rows × 128 features, 10 classes."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(10), 10)
    mixing = rng.normal(size=(16, 128))
    centres = rng.normal(size=(10, 16))
    def draw(rows: np.ndarray) -> np.ndarray:
        return np.maximum((centres[rows] + rng.normal(size=(rows.size, 16))) @ mixing, 0.0)
    return draw(labels), labels, draw(np.arange(300) % 10)


def penalised_gradient(head: LinearHead, features: np.ndarray, labels: np.ndarray, l2: float) -> np.ndarray:
    z = (features - head.mean_) / head.scale_
    probs = np.exp(log_softmax(z @ head.weights_ + head.bias_, axis=1))
    residual = (probs - np.eye(probs.shape[1])[labels]) / len(labels)
    return np.concatenate([(z.T @ residual + l2 * head.weights_).ravel(), residual.sum(axis=0)])


def test_head_reaches_the_penalised_optimum() -> None:
    features, labels, test = few_shot_problem()
    head = LinearHead(l2=0.3, max_iter=200).fit(features, labels, 10)
    assert np.abs(penalised_gradient(head, features, labels, 0.3)).max() < 1e-4

    z = (features - head.mean_) / head.scale_
    onehot = np.eye(10)[labels]
    def objective(theta: np.ndarray) -> float:
        w, b = theta[:1280].reshape(128, 10), theta[1280:]
        return float(-(onehot * log_softmax(z @ w + b, axis=1)).sum() / 100 + 0.15 * (w * w).sum())
    reference = minimize(objective, np.zeros(1290), method="L-BFGS-B",
                         options={"maxiter": 20000, "maxfun": 10**6, "ftol": 1e-15, "gtol": 1e-10}).x
    p_reference = softmax(((test - head.mean_) / head.scale_) @ reference[:1280].reshape(128, 10) + reference[1280:], axis=1)
    p_head = softmax(head.logits(test), axis=1)
    assert np.abs(p_head - p_reference).max() < 1e-3


def test_head_fit_keeps_blas_to_the_calling_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """A second BLAS thread cannot speed up a 100 × 128 problem, and on a busy machine (one worker
    process per core) waiting for it made each head fit tens of times slower."""
    seen: list[int] = []
    solve = transfer.minimize

    def recording_minimize(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen.extend(info["num_threads"] for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas")
        return solve(*args, **kwargs)

    monkeypatch.setattr(transfer, "minimize", recording_minimize)
    features, labels, _ = few_shot_problem()
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        if max(info["num_threads"] for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas") < 2:
            pytest.skip("BLAS runs one thread here: nothing to limit")
        LinearHead(l2=0.3, max_iter=200).fit(features, labels, 10)
        after = [info["num_threads"] for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas"]
    assert seen and set(seen) == {1}
    assert set(after) == {2}  # the caller's setting is restored
