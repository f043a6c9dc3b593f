"""The TRAK estimator (numpy) against answers known in closed form."""

from __future__ import annotations

import numpy as np
import pytest

from transfer_influence.errors import InputError
from transfer_influence.estimate import ModelGradients, trak_influence


def _regression(seed: int, examples: int = 40, dims: int = 5, targets: int = 7):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(examples, dims))
    y = x @ rng.normal(size=dims) + rng.normal(scale=0.5, size=examples)
    return x, y, rng.normal(size=(targets, dims))


def _leave_one_out_effects(x: np.ndarray, y: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """L × n: prediction on each query with all examples minus without example i, by refitting."""
    full = queries @ np.linalg.lstsq(x, y, rcond=None)[0]
    effects = []
    for i in range(x.shape[0]):
        keep = np.arange(x.shape[0]) != i
        effects.append(full - queries @ np.linalg.lstsq(x[keep], y[keep], rcond=None)[0])
    return np.array(effects)


def _loo_weights(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """r_i / (1 − h_ii): with these weights the kernel score of a linear model is its exact leave-one-out effect."""
    theta = np.linalg.lstsq(x, y, rcond=None)[0]
    leverage = np.einsum("ij,jk,ik->i", x, np.linalg.inv(x.T @ x), x)
    return (y - x @ theta) / (1 - leverage)


def test_linear_regression_scores_are_exact_leave_one_out_effects() -> None:
    """For f(x) = xᵀθ the gradient is x; with λ → 0 the score ψᵀ(ΦᵀΦ)⁻¹φ_i·w_i is the refit's answer."""
    x, y, queries = _regression(0)
    model = ModelGradients(x, queries, _loo_weights(x, y))
    each_alone = trak_influence([model, model], np.arange(x.shape[0]), [f"e{i}" for i in range(x.shape[0])],
                                [f"t{j}" for j in range(queries.shape[0])], ridge=1e-12)
    np.testing.assert_allclose(each_alone.values, _leave_one_out_effects(x, y, queries), rtol=1e-6, atol=1e-9)
    assert np.all(each_alone.stderr == 0) and each_alone.dof == 1 and each_alone.estimator == "trak"


def test_class_influence_sums_or_averages_its_examples_and_ensembles_models() -> None:
    units = np.repeat([0, 1, 2, 3], 10)
    names, ids = ["a", "b", "c", "d"], [f"t{j}" for j in range(7)]
    models, effects = [], []
    for seed in (1, 2, 3):
        x, y, queries = _regression(seed)
        weights = _loo_weights(x, y)
        models.append(ModelGradients(x, queries, weights))
        effects.append(_leave_one_out_effects(x, y, queries) / weights[:, None])  # unweighted kernel scores
    mean_weights = np.mean([m.weights for m in models], axis=0)
    per_model_sum = np.array([[(e * mean_weights[:, None])[units == k].sum(axis=0) for k in range(4)] for e in effects])
    summed = trak_influence(models, units, names, ids, ridge=1e-12, aggregation="sum", block=3)
    np.testing.assert_allclose(summed.values, per_model_sum.mean(axis=0), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(summed.stderr, per_model_sum.std(axis=0, ddof=1) / np.sqrt(3), rtol=1e-6, atol=1e-9)
    averaged = trak_influence(models, units, names, ids, ridge=1e-12, aggregation="mean")
    np.testing.assert_allclose(averaged.values, summed.values / 10, rtol=1e-6, atol=1e-9)
    assert summed.values.shape == (4, 7) and summed.unit_names == tuple(names) and summed.num_models == 3


def test_ridge_shrinks_scores_and_blocks_do_not_change_them() -> None:
    x, y, queries = _regression(4)
    model = ModelGradients(x, queries, np.ones(x.shape[0]))
    units = np.arange(x.shape[0]) % 2
    exact = trak_influence([model, model], units, ["a", "b"], list("abcdefg"), ridge=1e-12)
    shrunk = trak_influence([model, model], units, ["a", "b"], list("abcdefg"), ridge=10.0)
    assert np.abs(shrunk.values).sum() < np.abs(exact.values).sum()
    one_row = trak_influence([model, model], units, ["a", "b"], list("abcdefg"), ridge=1e-12, block=1)
    np.testing.assert_allclose(one_row.values, exact.values, rtol=1e-10)


@pytest.mark.parametrize(
    "change, message",
    [({"count": 1}, "at least 2 models"), ({"aggregation": "median"}, "class aggregation"),
     ({"ridge": -1.0}, "ridge"), ({"units": 39}, "disagree"), ({"ridge": 0.0, "dims": 60}, "singular")],
)
def test_bad_input_is_refused_with_its_fix(change: dict, message: str) -> None:
    dims = change.get("dims", 5)
    rng = np.random.default_rng(5)
    model = ModelGradients(rng.normal(size=(40, dims)), rng.normal(size=(3, dims)), np.ones(40))
    with pytest.raises(InputError, match=message):
        trak_influence([model] * change.get("count", 2), np.zeros(change.get("units", 40), dtype=int), ["a"],
                       ["x", "y", "z"], ridge=change.get("ridge", 1e-3), aggregation=change.get("aggregation", "sum"))
