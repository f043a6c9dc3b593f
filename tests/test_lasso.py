"""The multi-target LASSO path against scikit-learn, the held-out choice of λ, and input checks."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.linear_model import lasso_path as sklearn_lasso_path

from transfer_influence import lasso_datamodel, lasso_path
from transfer_influence.errors import InputError
from transfer_influence.estimate import lasso as lasso_module
from transfer_influence.estimate.lasso import LassoEstimate, lasso_objective


def _problem(m: int, units: int, n: int, seed: int, mask: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Centred design and outputs with a few true effects per target."""
    rng = np.random.default_rng(seed)
    X = (rng.random((m, units)) < 0.5).astype(np.float64) if mask else rng.normal(size=(m, units))
    X[:, 1] += 0.6 * X[:, 0]  # correlated columns make coordinate descent take several sweeps
    beta = np.zeros((units, n))
    beta[rng.integers(0, units, size=(4, n)), np.arange(n)] = rng.normal(size=(4, n))
    Y = X @ beta + rng.normal(scale=0.5, size=(m, n))
    return X - X.mean(axis=0), Y - Y.mean(axis=0)


def _sklearn_path(X: np.ndarray, Y: np.ndarray, lambdas: np.ndarray) -> np.ndarray:
    """scikit-learn's coefficients, one target at a time, shaped (k, units, n) like ours."""
    columns = []
    for j in range(Y.shape[1]):
        _, coef, _ = sklearn_lasso_path(X, Y[:, j], alphas=lambdas, tol=1e-14, max_iter=100_000)
        columns.append(coef.T)
    return np.stack(columns, axis=-1)


def _relative_objective_gap(X: np.ndarray, Y: np.ndarray, ours: np.ndarray, theirs: np.ndarray, lambdas: np.ndarray) -> float:
    worst = 0.0
    for i, lam in enumerate(lambdas):
        a = lasso_objective(X, Y, ours[i], lam)
        b = lasso_objective(X, Y, theirs[i], lam)
        worst = max(worst, float(np.max(np.abs(a - b) / b)))
    return worst


@pytest.mark.parametrize("m,units,n,mask", [(120, 15, 3, False), (60, 25, 4, False), (150, 12, 5, True)])
def test_matches_sklearn_in_float64(m: int, units: int, n: int, mask: bool) -> None:
    X, Y = _problem(m, units, n, seed=m + units, mask=mask)
    lam_max = np.abs(X.T @ Y / m).max()
    lambdas = lam_max * np.logspace(0, -3, 12)
    ours = lasso_path(X, Y, lambdas, tol=1e-14)
    theirs = _sklearn_path(X, Y, lambdas)
    assert ours.shape == (12, units, n) and ours.dtype == np.float64
    np.testing.assert_allclose(ours, theirs, atol=1e-6)
    assert _relative_objective_gap(X, Y, ours, theirs, lambdas) < 1e-8
    assert (theirs[-1] != 0).sum() > n  # the small end of the path is not trivially zero


def test_blocked_sweeps_for_large_working_sets_match_sklearn(monkeypatch: pytest.MonkeyPatch) -> None:
    """Targets whose working sets are large take the blocked sweeps over the shared Gram matrix;
    forced here for every target, with blocks smaller than the working sets."""
    monkeypatch.setattr(lasso_module, "DENSE_MIN_SIZE", 0)
    monkeypatch.setattr(lasso_module, "DENSE_FRACTION", 0.0)
    monkeypatch.setattr(lasso_module, "DENSE_BLOCK", 4)
    X, Y = _problem(90, 18, 4, seed=13, mask=True)
    lambdas = np.abs(X.T @ Y / 90).max() * np.logspace(0, -3, 10)
    ours = lasso_path(X, Y, lambdas, tol=1e-14)
    theirs = _sklearn_path(X, Y, lambdas)
    np.testing.assert_allclose(ours, theirs, atol=1e-6)
    assert _relative_objective_gap(X, Y, ours, theirs, lambdas) < 1e-8


@pytest.mark.parametrize("blocked", [False, True])
def test_units_missed_by_screening_are_added_by_the_kkt_check(monkeypatch: pytest.MonkeyPatch, blocked: bool) -> None:
    """With a screening rule that keeps only the current non-zeros (so it misses every unit that
    should enter), the KKT check alone must still bring the path to scikit-learn's solution, and
    a unit left out of one target's working set must not stall that target's convergence."""
    monkeypatch.setattr(lasso_module, "_strong_rule", lambda coef, gradient, lam, previous: coef != 0)
    if blocked:
        monkeypatch.setattr(lasso_module, "DENSE_MIN_SIZE", 0)
        monkeypatch.setattr(lasso_module, "DENSE_FRACTION", 0.0)
    X, Y = _problem(120, 15, 3, seed=21)
    lambdas = np.abs(X.T @ Y / 120).max() * np.logspace(0, -3, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        ours = lasso_path(X, Y, lambdas, tol=1e-14, max_sweeps=5000)
    np.testing.assert_allclose(ours, _sklearn_path(X, Y, lambdas), atol=1e-6)


def test_float32_inputs_match_sklearn_on_the_same_values() -> None:
    """float32 in, float32 out, computed in float64: it matches scikit-learn run on the same values
    in float64 (scikit-learn's own float32 solver is only float32-accurate)."""
    X, Y = _problem(100, 20, 3, seed=5)
    X32, Y32 = X.astype(np.float32), Y.astype(np.float32)
    lambdas = np.abs(X.T @ Y / 100).max() * np.logspace(-0.5, -2.5, 8)
    ours = lasso_path(X32, Y32, lambdas, tol=1e-14)
    theirs = _sklearn_path(X32.astype(np.float64), Y32.astype(np.float64), lambdas)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, theirs, atol=1e-6)
    assert _relative_objective_gap(X32, Y32, ours, theirs, lambdas) < 1e-8


def test_one_grid_per_target_equals_separate_runs() -> None:
    X, Y = _problem(80, 10, 3, seed=9)
    grids = np.abs(X.T @ Y / 80).max(axis=0)[None, :] * np.logspace(0, -2, 6)[:, None]
    together = lasso_path(X, Y, grids, tol=1e-13)
    for j in range(3):
        alone = lasso_path(X, Y[:, [j]], grids[:, j], tol=1e-13)
        np.testing.assert_allclose(together[:, :, j], alone[:, :, 0], atol=1e-9)


def test_lambda_above_lambda_max_gives_zeros() -> None:
    X, Y = _problem(50, 8, 3, seed=2)
    lam_max = np.abs(X.T @ Y / 50).max(axis=0)
    path = lasso_path(X, Y, [lam_max.max() * 1.01, lam_max.max() * 1.0001])
    assert not path.any()
    just_below = lasso_path(X, Y, [lam_max.min() * 0.9])
    assert (just_below[0] != 0).any()


def _sparse_datamodel(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Binary masks (α = 0.5) and outputs driven by 3 of 60 units per target, plus noise."""
    rng = np.random.default_rng(seed)
    m, units, n = 400, 60, 6
    masks = rng.random((m, units)) < 0.5
    truth = np.zeros((units, n))
    for j in range(n):
        truth[rng.choice(units, size=3, replace=False), j] = rng.choice([-1.0, 1.0], size=3) * rng.uniform(0.3, 0.6, size=3)
    outputs = 0.8 + masks @ truth + rng.normal(scale=0.5, size=(m, n))
    return masks, outputs.astype(np.float32), truth


def _support_f1(coef: np.ndarray, truth: np.ndarray) -> float:
    found, real = coef != 0, truth != 0
    true_positives = (found & real).sum()
    return float(2 * true_positives / (found.sum() + real.sum()))


def test_heldout_choice_recovers_the_support_better_than_a_tiny_lambda() -> None:
    masks, outputs, truth = _sparse_datamodel(seed=11)
    result = lasso_datamodel(masks, outputs, n_lambdas=20, holdout=0.25, seed=3)
    assert isinstance(result, LassoEstimate)
    assert result.values.shape == truth.shape and result.chosen_lambda.shape == (truth.shape[1],)
    train = ~result.heldout_models
    x = masks[train] - masks[train].mean(axis=0)
    y = outputs[train] - outputs[train].mean(axis=0)
    tiny = lasso_path(x, y, result.lambdas[-1:] * 1e-3)[0]
    chosen_f1, tiny_f1 = _support_f1(result.values, truth), _support_f1(tiny, truth)
    assert chosen_f1 > tiny_f1 + 0.25
    # held-out error favours prediction, so it keeps some false positives, but every true effect
    # is found and far fewer units are selected than at a tiny λ
    assert ((result.values != 0) & (truth != 0)).sum() >= 0.9 * (truth != 0).sum()
    assert (result.values != 0).sum() * 3 < (tiny != 0).sum()
    # the chosen λ is the held-out optimum of the path, and the coefficients are the fit there
    np.testing.assert_array_equal(result.chosen_index, np.nanargmin(result.heldout_mse, axis=0))
    refit = lasso_path(x, y, result.lambdas, tol=lasso_module.DATAMODEL_TOL)
    # equal up to the solver's tolerance (duality gap 1e-4·yᵀy/m): targets that stop early are batched
    # with different companions, so the two solves stop at slightly different iterates
    np.testing.assert_allclose(result.values, refit[result.chosen_index, :, np.arange(6)].T, atol=1e-4)
    # scored on the 50 held-out models that did not choose λ (R² 0.12–0.46 here; no longer flattered)
    assert (result.heldout_r2 > 0.1).all() and (result.heldout_spearman > 0.35).all()
    # signs of the true effects are recovered where found
    found = (result.values != 0) & (truth != 0)
    assert (np.sign(result.values[found]) == np.sign(truth[found])).all()


def test_heldout_blocks_stay_together() -> None:
    masks, outputs, _ = _sparse_datamodel(seed=4)
    blocks = np.repeat(np.arange(200), 2)
    result = lasso_datamodel(masks, outputs, n_lambdas=5, holdout=0.2, blocks=blocks, seed=1)
    held = result.heldout_models.reshape(200, 2)
    assert (held[:, 0] == held[:, 1]).all() and 30 <= held[:, 0].sum() <= 50


@pytest.mark.parametrize(
    "X,Y,lambdas,match",
    [
        (np.zeros((10, 3)), np.zeros(10), [1.0], "2-D"),
        (np.zeros((10, 3)), np.zeros((9, 2)), [1.0], "rows"),
        (np.full((10, 3), np.nan), np.zeros((10, 2)), [1.0], "NaN"),
        (np.zeros((10, 3)), np.zeros((10, 2)), [0.1, 1.0], "largest first"),
        (np.zeros((10, 3)), np.zeros((10, 2)), [1.0, 0.0], "positive"),
        (np.zeros((10, 3)), np.zeros((10, 2)), np.ones((2, 3)), "shape"),
    ],
)
def test_bad_path_input_is_one_clear_error(X: np.ndarray, Y: np.ndarray, lambdas: list[float], match: str) -> None:
    with pytest.raises(InputError, match=match):
        lasso_path(X, Y, lambdas)


def test_bad_datamodel_input_is_one_clear_error() -> None:
    masks, outputs, _ = _sparse_datamodel(seed=1)
    with pytest.raises(InputError, match="0 and 1"):
        lasso_datamodel(masks * 2.0, outputs)
    bad = outputs.copy()
    bad[3, 1] = np.nan
    with pytest.raises(InputError, match="NaN"):
        lasso_datamodel(masks, bad)
    with pytest.raises(InputError, match="holdout"):
        lasso_datamodel(masks, outputs, holdout=1.5)
    with pytest.raises(InputError, match="at least 2"):
        lasso_datamodel(masks, outputs, holdout=np.arange(400) == 0)


def test_too_few_sweeps_warn() -> None:
    X, Y = _problem(60, 25, 2, seed=7)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lasso_path(X, Y, np.abs(X.T @ Y / 60).max() * np.logspace(-1, -3, 3), tol=1e-14, max_sweeps=1)
    assert any("max_sweeps" in str(w.message) for w in caught)


def _overfitting_datamodel(seed: int, m: int = 160, units: int = 90, n: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Fewer training models than twice the units and a few real effects: the held-out error falls
    while the real effects enter, then rises as λ → 0 lets noise in (a U-shaped error path)."""
    rng = np.random.default_rng(seed)
    masks = rng.random((m, units)) < 0.5
    truth = np.zeros((units, n))
    for j in range(n):
        truth[rng.choice(units, size=3, replace=False), j] = rng.choice([-1.0, 1.0], size=3) * rng.uniform(0.4, 0.8, size=3)
    outputs = masks @ truth + rng.normal(scale=0.6, size=(m, n))
    return masks, outputs


def test_early_stopping_keeps_the_full_paths_choice_and_leaves_the_rest_unfitted() -> None:
    masks, outputs = _overfitting_datamodel(seed=8)
    # 0.4 held out: 32 models choose λ (the other half scores), enough for a smooth error path
    settings = dict(n_lambdas=25, holdout=0.4, seed=2, min_ratio=1e-2, tol=1e-10, max_sweeps=20_000)
    full = lasso_datamodel(masks, outputs, patience=None, **settings)
    early = lasso_datamodel(masks, outputs, patience=3, **settings)
    assert not np.isnan(full.heldout_mse).any()
    # the full path is U-shaped: its minimum lies well before the smallest λ
    assert (full.chosen_index + 3 < 24).all()
    fitted = ~np.isnan(early.heldout_mse)
    counts = fitted.sum(axis=0)
    # fitted λ form a prefix of each grid; the path stops right after `patience` steps without a new best
    np.testing.assert_array_equal(fitted, np.arange(25)[:, None] < counts[None, :])
    np.testing.assert_array_equal(counts, early.chosen_index + 3 + 1)
    assert (counts < 25).all()
    # the same fits up to rounding (batches of different targets sum in a different order)
    np.testing.assert_allclose(early.heldout_mse[fitted], full.heldout_mse[fitted], rtol=1e-9)
    np.testing.assert_array_equal(early.chosen_index, full.chosen_index)
    np.testing.assert_array_equal(early.chosen_index, np.nanargmin(early.heldout_mse, axis=0))
    np.testing.assert_array_equal(early.chosen_lambda, full.chosen_lambda)
    np.testing.assert_allclose(early.values, full.values, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(early.values != 0, full.values != 0)
    np.testing.assert_allclose(early.heldout_r2, full.heldout_r2, rtol=1e-9)
    np.testing.assert_allclose(early.heldout_spearman, full.heldout_spearman, rtol=1e-9)


def test_targets_dropped_mid_path_keep_their_solution_and_spare_the_others() -> None:
    """Clearing a target's flag between λ steps freezes its column at its last solution, and the
    targets still active follow exactly the path they would have followed alone."""
    X, Y = _problem(120, 15, 3, seed=21)
    lambdas = np.repeat((np.abs(X.T @ Y / 120).max() * np.logspace(0, -3, 8))[:, None], 3, axis=1)
    reference = lasso_path(X, Y, lambdas, tol=1e-14)
    problem = lasso_module._gram_problem(X, Y)
    active = np.ones(3, dtype=bool)
    steps = []
    for i, coef in enumerate(lasso_module._solve_path(problem, lambdas, 1e-14, 1000, active)):
        steps.append(coef.copy())
        if i == 2:
            active[1] = False
    assert len(steps) == 8
    for i, coef in enumerate(steps):
        np.testing.assert_allclose(coef[:, [0, 2]], reference[i][:, [0, 2]], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(coef[:, 1], reference[min(i, 2)][:, 1], rtol=1e-10, atol=1e-12)
    assert (reference[7][:, 1] != reference[2][:, 1]).any()


def test_the_path_ends_when_every_target_is_dropped() -> None:
    X, Y = _problem(60, 10, 2, seed=3)
    lambdas = np.repeat((np.abs(X.T @ Y / 60).max() * np.logspace(0, -2, 6))[:, None], 2, axis=1)
    active = np.ones(2, dtype=bool)
    steps = 0
    for _ in lasso_module._solve_path(lasso_module._gram_problem(X, Y), lambdas, 1e-10, 1000, active):
        steps += 1
        active[:] = False
    assert steps == 1


def test_bad_patience_is_one_clear_error() -> None:
    masks, outputs, _ = _sparse_datamodel(seed=1)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(InputError, match="patience"):
            lasso_datamodel(masks, outputs, patience=bad)  # type: ignore[arg-type]


def _fixed_size_masks(seed: int, m: int, units: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Every model trains on exactly half the units (an iid design of fixed size): the centred mask
    columns sum to zero in every row, so they are exactly collinear, and there are fewer models
    than units — the design on which the small end of the path is slowest."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((m, units), dtype=bool)
    for row in masks:
        row[rng.choice(units, units // 2, replace=False)] = True
    truth = np.zeros((units, n))
    for j in range(n):
        truth[rng.choice(units, 3, replace=False), j] = rng.uniform(0.3, 0.8, 3)
    return masks, (masks @ truth + rng.normal(scale=0.5, size=(m, n))).astype(np.float32)


def test_defaults_converge_on_a_collinear_underdetermined_design() -> None:
    masks, outputs = _fixed_size_masks(seed=1, m=100, units=200, n=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        # 20 held out: 10 choose λ, 10 score (the default 10 would leave 5 to choose λ on 100 models)
        result = lasso_datamodel(masks, outputs, holdout=0.2)
    assert np.isnan(result.heldout_mse[-1]).all()  # no target needed the most expensive λ
    assert (result.values != 0).any(axis=0).all()


def test_default_tolerance_is_loose_enough_for_choosing_lambda() -> None:
    """The whole path (no early stopping) on the same kind of design: the datamodel's default
    tolerance is reached within a few hundred sweeps where lasso_path's 1e-6 is not."""
    masks, outputs = _fixed_size_masks(seed=1, m=60, units=100, n=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        loose = lasso_datamodel(masks, outputs, patience=None, max_sweeps=300)
    with pytest.warns(RuntimeWarning, match="max_sweeps"):
        tight = lasso_datamodel(masks, outputs, patience=None, max_sweeps=300, tol=1e-6)
    np.testing.assert_array_equal(loose.chosen_index, tight.chosen_index)


def test_heldout_scores_come_from_models_that_did_not_choose_lambda() -> None:
    masks, outputs, _ = _sparse_datamodel(seed=5)
    result = lasso_datamodel(masks, outputs, n_lambdas=12, holdout=0.3, seed=2)
    selection, scoring = result.selection_models, result.scoring_models
    assert not (selection & scoring).any() and ((selection | scoring) == result.heldout_models).all()
    assert selection.sum() >= 2 and result.num_scoring == scoring.sum() >= 2
    train = ~result.heldout_models
    x_mean, y_mean = masks[train].mean(axis=0), outputs[train].astype(np.float64).mean(axis=0)
    # λ is the argmin of the error on the selection models, along a path refitted on the training models
    x = masks[train] - x_mean
    path = lasso_path(x, outputs[train] - y_mean, result.lambdas, tol=lasso_module.DATAMODEL_TOL)
    xs, ys = masks[selection] - x_mean, outputs[selection] - y_mean
    mse = np.stack([((ys - xs @ path[i]) ** 2).mean(axis=0) for i in range(path.shape[0])])
    np.testing.assert_allclose(result.heldout_mse[np.isfinite(result.heldout_mse)], mse[np.isfinite(result.heldout_mse)], rtol=1e-4)
    # and the scores are on the scoring models alone
    xc, yc = masks[scoring] - x_mean, outputs[scoring] - y_mean
    pred = xc @ result.values.astype(np.float64)
    r2 = 1 - ((yc - pred) ** 2).mean(axis=0) / (yc**2).mean(axis=0)
    np.testing.assert_allclose(result.heldout_r2, r2, rtol=1e-4, atol=1e-5)
    blocks = np.repeat(np.arange(200), 2)
    paired = lasso_datamodel(masks, outputs, n_lambdas=5, holdout=0.3, blocks=blocks, seed=1)
    for part in (paired.selection_models, paired.scoring_models):
        assert (part.reshape(200, 2)[:, 0] == part.reshape(200, 2)[:, 1]).all()  # blocks stay whole


def test_heldout_r2_is_unbiased_for_fresh_models_where_the_selection_half_flatters() -> None:
    """Ground truth: the chosen fit's R² on 4,000 fresh models from the same sparse datamodel. The
    error on the models that chose λ is a minimum over the path, so it overstates; the scoring
    models' R² is an unbiased estimate of the fresh one."""
    rng = np.random.default_rng(0)
    units, n = 60, 40
    truth = np.zeros((units, n))
    for j in range(n):
        truth[rng.choice(units, size=3, replace=False), j] = rng.uniform(0.2, 0.4, size=3)
    fresh = rng.random((4000, units)) < 0.5
    fresh_y = fresh @ truth + rng.normal(scale=0.5, size=(4000, n))
    scored, flattering = [], []
    for seed in range(6):
        draw = np.random.default_rng(100 + seed)
        masks = draw.random((240, units)) < 0.5
        outputs = masks @ truth + draw.normal(scale=0.5, size=(240, n))
        result = lasso_datamodel(masks, outputs, n_lambdas=15, holdout=0.5, seed=seed, patience=None)
        train = ~result.heldout_models
        x_mean, y_mean = masks[train].mean(axis=0), outputs[train].mean(axis=0)
        coef = result.values.astype(np.float64)
        pred = (fresh - x_mean) @ coef
        fresh_r2 = 1 - ((fresh_y - y_mean - pred) ** 2).mean(axis=0) / ((fresh_y - y_mean) ** 2).mean(axis=0)
        ys = outputs[result.selection_models] - y_mean
        selection_r2 = 1 - result.heldout_mse[result.chosen_index, np.arange(n)] / (ys**2).mean(axis=0)
        scored.append(result.heldout_r2 - fresh_r2)
        flattering.append(selection_r2 - fresh_r2)
    bias_scored, bias_selection = float(np.mean(scored)), float(np.mean(flattering))
    se = float(np.std(scored) / np.sqrt(np.size(scored)))
    assert abs(bias_scored) < 3 * se + 0.005, (bias_scored, se)
    assert bias_selection > bias_scored + 0.01, (bias_selection, bias_scored)
