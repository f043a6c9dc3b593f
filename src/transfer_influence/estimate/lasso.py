"""LASSO on the inclusion mask for many targets at once (example-level datamodels, paper Alg. 2).

Objective per target column y of Y, on the scale of scikit-learn's ``lasso_path``::

    (1/(2m))·||y − X b||² + λ·||b||₁        (no intercept: the caller centres X and Y)

Why a solver of its own: every target shares one design X (m models × L source examples), so the
work that depends on X alone is done once. The m×L design enters only through its Gram matrix
G = XᵀX/m and the correlations XᵀY/m, computed once in float64 (one pass over the rows); after that
the cost no longer grows with m. Per λ (largest first, warm-started from the previous solution):

1. the sequential strong rule keeps, per target, the coordinates that are already non-zero or whose
   correlation with the residual is at least 2λ − λ_prev: a small working set per target;
2. coordinate descent runs on every target's working set at once: targets are sorted by working-set
   size and batched, each batch gathers its targets' G[A_t, A_t] blocks, and one sweep updates
   position k of every target with vectorised numpy operations (one Python loop over positions, not
   over targets or coordinates);
3. a target stops when its duality gap (scikit-learn's, in Gram form) is at most ``tol``·yᵀy/m;
4. the full gradient XᵀY/m − G·B (one matrix product for all targets) checks the KKT conditions of
   the coordinates left out; violators join the working set and the step repeats until none is left.

The small end of the path is the expensive end (dense solutions, and fewer training models than
units), yet a target's held-out error usually bottoms out well before it: ``lasso_datamodel`` stops
solving a target once its held-out error has stopped improving for a few λ (``patience``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
from scipy import stats

from ..errors import InputError
from .inputs import _validate

ROW_CHUNK = 2048
"""Rows of the design converted to float64 at a time while accumulating the Gram matrix."""

BATCH_BYTES = 128 * 2**20
"""Memory for one batch of gathered Gram blocks (targets × working set²), float64."""

DENSE_MIN_SIZE = 128
DENSE_FRACTION = 0.1
"""A target whose working set exceeds both this many units and this fraction of all units is
solved by blocked sweeps over the shared Gram matrix instead of its own gathered block."""

DENSE_BLOCK = 64
"""Units per block of the blocked sweeps: exact updates inside, one matrix product after."""

DATAMODEL_TOL = 1e-4
"""Duality-gap tolerance of ``lasso_datamodel`` (scikit-learn's default): choosing λ by held-out
error needs far less precision than ``lasso_path``'s default, and the tight end of the path is where
coordinate descent is slowest."""

DATAMODEL_PATIENCE = 4
"""λ steps without a held-out improvement after which ``lasso_datamodel`` stops solving a target.
A target whose error first rises (a spurious first unit) and then falls below the all-zero fit needs
a few steps to recover; on an example-level study 4 left every sampled target's choice as the whole
path's, where 3 changed about one in two hundred."""


@dataclass(frozen=True)
class _Problem:
    """What the path needs from (X, Y): all float64, all O(L² + L·n)."""

    gram: np.ndarray  # L × L, XᵀX/m
    corr: np.ndarray  # L × n, XᵀY/m
    y_norm2: np.ndarray  # n, yᵀy/m


def lasso_path(
    X: np.ndarray,
    Y: np.ndarray,
    lambdas: np.ndarray | Sequence[float],
    *,
    tol: float = 1e-6,
    max_sweeps: int = 1000,
) -> np.ndarray:
    """LASSO coefficients of every column of ``Y`` on ``X`` for each λ in ``lambdas``.

    ``X`` is m × L, ``Y`` is m × n (both centred by the caller); ``lambdas`` holds k penalties sorted
    largest first, either shared by all targets (shape (k,)) or one grid per target (shape (k, n)).
    A target's λ path stops when its duality gap is at most ``tol``·yᵀy/m (scikit-learn's criterion,
    so ``tol`` means the same there). Returns coefficients shaped (k, L, n) in the inputs' float type
    (float32 stays float32; the computation itself runs in float64).
    """
    X, Y = _check_design(X, Y)
    grid = _check_lambdas(lambdas, Y.shape[1])
    _check_solver_settings(tol, max_sweeps)
    problem = _gram_problem(X, Y)
    dtype = np.result_type(X.dtype, Y.dtype, np.float32)
    path = np.empty((grid.shape[0], X.shape[1], Y.shape[1]), dtype=dtype)
    for i, coef in enumerate(_solve_path(problem, grid, tol, max_sweeps)):
        path[i] = coef
    return path


def lasso_objective(X: np.ndarray, Y: np.ndarray, coef: np.ndarray, lam: np.ndarray | float) -> np.ndarray:
    """(1/(2m))·||y − Xb||² + λ·||b||₁ per column, evaluated in float64 (for checks and benchmarks)."""
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    coef = np.asarray(coef, dtype=np.float64)
    residual = Y - X @ coef
    return (residual**2).sum(axis=0) / (2 * X.shape[0]) + np.asarray(lam, dtype=np.float64) * np.abs(coef).sum(axis=0)


@dataclass(frozen=True)
class LassoEstimate:
    """Sparse datamodel coefficients per target, each at the λ its held-out models preferred.

    A sibling of :class:`InfluenceEstimate` rather than one: a LASSO coefficient has no simple
    standard error (the selection is part of the estimate), so its quality is reported as held-out
    fit instead. ``values[k, j]`` is source unit k's coefficient for target j, fitted on the models
    not held out (``heldout_models`` marks the others). The held-out models are split in two:
    ``selection_models`` choose λ and ``scoring_models`` score the chosen fit. Why: an error measured
    on the models that picked λ is the minimum over the path of noisy errors, so it is optimistic;
    the scoring models played no part in the fit or the choice, so their scores are honest.
    ``lambdas`` is the (k, n) grid each target was fitted along, ``chosen_index``/``chosen_lambda``
    the λ with the least squared error on the selection models (ties go to the larger λ, the
    sparser model), and ``heldout_mse`` that error path. A target whose error stopped improving for
    ``patience`` consecutive λ was not solved further along its grid: its later entries of
    ``heldout_mse`` are NaN (not fitted), and ``chosen_index`` is the argmin over the fitted ones
    (``np.nanargmin``).
    ``heldout_r2`` is 1 − MSE / (error of predicting the training mean) and ``heldout_spearman`` ranks
    the predictions against the outputs (NaN where no unit was selected, so the prediction is
    constant), both on the scoring models only. ``intercept`` is the training mean of each target's
    output.
    """

    values: np.ndarray
    intercept: np.ndarray
    lambdas: np.ndarray
    chosen_index: np.ndarray
    chosen_lambda: np.ndarray
    heldout_mse: np.ndarray
    heldout_r2: np.ndarray
    heldout_spearman: np.ndarray
    heldout_models: np.ndarray
    selection_models: np.ndarray
    scoring_models: np.ndarray
    unit_names: tuple[str, ...]
    target_ids: tuple[str, ...]
    output_kind: str | None = None
    estimator: str = "lasso"
    unit_kind: str = "example"

    @property
    def num_models(self) -> int:
        return int(self.heldout_models.size)

    @property
    def num_heldout(self) -> int:
        return int(self.heldout_models.sum())

    @property
    def num_scoring(self) -> int:
        """Held-out models that scored the fit (``heldout_r2``, ``heldout_spearman``), none of which chose λ."""
        return int(self.scoring_models.sum())

    def column(self, target: str | int) -> np.ndarray:
        j = self.target_ids.index(str(target)) if isinstance(target, str) else int(target)
        return self.values[:, j]


def lasso_datamodel(
    masks: np.ndarray,
    outputs: np.ndarray,
    n_lambdas: int = 20,
    holdout: float | np.ndarray = 0.1,
    seed: int = 0,
    *,
    min_ratio: float = 1e-2,
    blocks: np.ndarray | None = None,
    unit_names: Sequence[str] | None = None,
    target_ids: Sequence[str] | None = None,
    output_kind: str | None = None,
    tol: float = DATAMODEL_TOL,
    max_sweeps: int = 1000,
    patience: int | None = DATAMODEL_PATIENCE,
) -> LassoEstimate:
    """LASSO datamodel of every target's output on the inclusion mask, λ chosen per target.

    ``holdout`` is the fraction of models left out of the fit (drawn with ``seed``; with ``blocks``,
    whole design blocks are left out so that paired models never straddle the split) or a boolean
    array marking the held-out models; the held-out models are then split in two at random (whole
    blocks again), one half choosing λ and the other scoring the result, so at least 4 are needed.
    Each target's grid has ``n_lambdas`` values from its own λ_max (where every coefficient is zero)
    down to ``min_ratio``·λ_max, log-spaced; the λ with the least squared error on the selection
    half is chosen. The returned coefficients are the fit on the training
    models at that λ — not refitted on all models: the chosen λ is calibrated to the training size,
    and the refit would cost a second path.

    ``patience``: a target's path stops once ``patience`` consecutive λ have not lowered its held-out
    error below its best so far (its remaining λ are left unfitted, NaN in ``heldout_mse``); the
    smallest λ cost the most and rarely win. ``None`` solves every target's whole grid. ``tol`` is
    the duality gap relative to yᵀy/m, as in :func:`lasso_path` but looser by default (λ is chosen
    by held-out error, which the last digits of the fit do not change).
    """
    masks, outputs = _check_datamodel_inputs(masks, outputs)
    m, num_units = masks.shape
    n = outputs.shape[1]
    names = _labels(unit_names, num_units, "unit names", "mask columns")
    ids = _labels(target_ids, n, "target ids", "output columns")
    if isinstance(n_lambdas, bool) or not isinstance(n_lambdas, (int, np.integer)) or n_lambdas < 1:
        raise InputError(f"n_lambdas must be a positive integer, got {n_lambdas!r}")
    if not (0 < min_ratio < 1):
        raise InputError(f"min_ratio must lie strictly between 0 and 1 (smallest λ as a fraction of λ_max), got {min_ratio}")
    _check_solver_settings(tol, max_sweeps)
    if patience is not None and (isinstance(patience, bool) or not isinstance(patience, (int, np.integer)) or patience < 1):
        raise InputError(f"patience must be a positive integer (λ steps without held-out improvement) or None, got {patience!r}")
    heldout = _heldout_models(holdout, m, seed, blocks)
    selection, scoring = _split_heldout(heldout, seed, blocks)
    train = ~heldout

    mask_mean = masks[train].mean(axis=0, dtype=np.float64)
    output_mean = outputs[train].mean(axis=0, dtype=np.float64)
    problem = _gram_problem(masks[train], outputs[train], mask_mean, output_mean)
    lam_max = np.abs(problem.corr).max(axis=0)
    # A target whose output does not vary over the training models has λ_max = 0: any positive grid
    # leaves all its coefficients at zero.
    lam_max = np.where(lam_max > 0, lam_max, 1.0)
    grid = lam_max[None, :] * np.logspace(0.0, np.log10(min_ratio), n_lambdas)[:, None]

    x_held = masks[selection].astype(np.float64) - mask_mean
    y_held = outputs[selection].astype(np.float64) - output_mean
    mse_path = np.full((n_lambdas, n), np.nan)
    best_coef = np.zeros((num_units, n))
    best_mse = np.full(n, np.inf)
    best_index = np.zeros(n, dtype=np.intp)
    active = np.ones(n, dtype=bool)
    for i, coef in enumerate(_solve_path(problem, grid, tol, max_sweeps, active)):
        columns = np.flatnonzero(active)
        pred = _predict(x_held, coef[:, columns])
        mse = ((y_held[:, columns] - pred) ** 2).mean(axis=0)
        mse_path[i, columns] = mse
        better = mse < best_mse[columns]
        improved = columns[better]
        best_mse[improved] = mse[better]
        best_index[improved] = i
        best_coef[:, improved] = coef[:, improved]
        if patience is not None:
            active[columns[i - best_index[columns] >= patience]] = False
    chosen = best_index  # = np.nanargmin(mse_path, axis=0): strict improvement keeps the larger λ on ties
    r2, spearman = _scores(masks[scoring].astype(np.float64) - mask_mean,
                           outputs[scoring].astype(np.float64) - output_mean, best_coef)
    return LassoEstimate(
        values=best_coef.astype(np.float32),
        intercept=output_mean,
        lambdas=grid,
        chosen_index=chosen,
        chosen_lambda=grid[chosen, np.arange(n)],
        heldout_mse=mse_path,
        heldout_r2=r2,
        heldout_spearman=spearman,
        heldout_models=heldout,
        selection_models=selection,
        scoring_models=scoring,
        unit_names=names,
        target_ids=ids,
        output_kind=output_kind,
    )


# ---------------------------------------------------------------------------------------------
# Input checks: one clear error before any expensive work.


def _check_design(X: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    X, Y = np.asarray(X), np.asarray(Y)
    if X.ndim != 2:
        raise InputError(f"X must be 2-D (models × source units), got shape {X.shape}")
    if Y.ndim != 2:
        raise InputError(f"Y must be 2-D (models × targets), got shape {Y.shape}; for one target pass y.reshape(-1, 1)")
    if X.shape[0] != Y.shape[0]:
        raise InputError(f"X has {X.shape[0]} rows (models) but Y has {Y.shape[0]}; pass one row of each per model")
    if X.shape[0] < 1 or X.shape[1] < 1 or Y.shape[1] < 1:
        raise InputError(f"X and Y must be non-empty, got shapes {X.shape} and {Y.shape}")
    for name, array in (("X", X), ("Y", Y)):
        if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_):
            raise InputError(f"{name} must be numeric, got dtype {array.dtype}")
        if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
            raise InputError(f"{name} holds NaN or inf; drop or re-run the models that produced them")
    return X, Y


def _check_lambdas(lambdas: np.ndarray | Sequence[float], n: int) -> np.ndarray:
    grid = np.asarray(lambdas, dtype=np.float64)
    if grid.ndim == 1:
        grid = np.repeat(grid[:, None], n, axis=1)
    if grid.ndim != 2 or grid.shape[1] != n or grid.shape[0] < 1:
        raise InputError(f"lambdas must have shape (k,) or (k, {n}) (one grid per target), got {np.shape(lambdas)}")
    if not np.isfinite(grid).all() or (grid <= 0).any():
        raise InputError("lambdas must be finite and positive; for λ = 0 use least squares or ridge instead")
    if (np.diff(grid, axis=0) > 0).any():
        raise InputError("lambdas must be sorted largest first (the path warm-starts downwards); pass np.sort(lambdas)[::-1]")
    return grid


def _check_solver_settings(tol: float, max_sweeps: int) -> None:
    if not (np.isfinite(tol) and tol > 0):
        raise InputError(f"tol must be a positive number (duality gap relative to yᵀy/m), got {tol}")
    if isinstance(max_sweeps, bool) or not isinstance(max_sweeps, (int, np.integer)) or max_sweeps < 1:
        raise InputError(f"max_sweeps must be a positive integer, got {max_sweeps!r}")


def _check_datamodel_inputs(masks: np.ndarray, outputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The shared estimator checks (``inputs._validate``), then numeric, finite outputs."""
    outputs = np.asarray(outputs)
    masks = _validate(np.asarray(masks), outputs)
    if not np.issubdtype(outputs.dtype, np.floating) and not np.issubdtype(outputs.dtype, np.integer):
        raise InputError(f"outputs must be numeric, got dtype {outputs.dtype}")
    if not np.isfinite(outputs).all():
        raise InputError("outputs hold NaN or inf; drop or re-run the models that produced them")
    return masks, outputs


def _labels(labels: Sequence[str] | None, count: int, what: str, of: str) -> tuple[str, ...]:
    names = tuple(str(x) for x in labels) if labels is not None else tuple(str(k) for k in range(count))
    if len(names) != count:
        raise InputError(f"{len(names)} {what} for {count} {of}")
    return names


def _heldout_models(holdout: float | np.ndarray, m: int, seed: int, blocks: np.ndarray | None) -> np.ndarray:
    """Which models are left out of the fit: a given boolean mask, or a seeded random fraction."""
    if isinstance(holdout, np.ndarray) or isinstance(holdout, (list, tuple)):
        heldout = np.asarray(holdout)
        if heldout.shape != (m,) or heldout.dtype != np.bool_:
            raise InputError(f"holdout as an array must be boolean with one entry per model ({m}), got {heldout.dtype} {heldout.shape}")
    else:
        fraction = float(holdout)
        if not (0 < fraction < 1):
            raise InputError(f"holdout must be a fraction strictly between 0 and 1 or a boolean mask of models, got {holdout}")
        rng = np.random.default_rng(seed)
        if blocks is None:
            heldout = np.zeros(m, dtype=bool)
            heldout[rng.permutation(m)[: max(1, round(fraction * m))]] = True
        else:
            blocks = np.asarray(blocks)
            if blocks.shape != (m,):
                raise InputError(f"blocks must hold one design block id per model ({m}), got shape {blocks.shape}")
            ids = np.unique(blocks)
            chosen = rng.permutation(ids)[: max(1, round(fraction * ids.size))]
            heldout = np.isin(blocks, chosen)
    if heldout.sum() < 2 or (~heldout).sum() < 2:
        raise InputError(
            f"the split leaves {int(heldout.sum())} held-out and {int((~heldout).sum())} training models; "
            "both need at least 2 — train more models or change holdout"
        )
    return heldout


def _split_heldout(heldout: np.ndarray, seed: int, blocks: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(selection, scoring): the held-out models split in two at random, whole blocks together.

    Why two parts: the part that chooses λ cannot also score the choice without flattering it."""
    rows = np.flatnonzero(heldout)
    rng = np.random.default_rng([seed, 0x5C0E])
    groups = np.asarray(blocks)[rows] if blocks is not None else rows
    ids = rng.permutation(np.unique(groups))
    chosen = np.isin(groups, ids[: ids.size // 2])
    selection = np.zeros_like(heldout)
    scoring = np.zeros_like(heldout)
    selection[rows[chosen]] = True
    scoring[rows[~chosen]] = True
    if selection.sum() < 2 or scoring.sum() < 2:
        raise InputError(
            f"the {rows.size} held-out models split into {int(selection.sum())} that choose λ and "
            f"{int(scoring.sum())} that score the fit; both need at least 2 — raise holdout or train more models"
        )
    return selection, scoring


# ---------------------------------------------------------------------------------------------
# The solver.


def _gram_problem(
    X: np.ndarray, Y: np.ndarray, x_mean: np.ndarray | None = None, y_mean: np.ndarray | None = None
) -> _Problem:
    """G = XᵀX/m, XᵀY/m and yᵀy/m in float64, a block of rows at a time (bounded extra memory)."""
    m, num_units = X.shape
    gram = np.zeros((num_units, num_units))
    corr = np.zeros((num_units, Y.shape[1]))
    y_norm2 = np.zeros(Y.shape[1])
    for start in range(0, m, ROW_CHUNK):
        x = X[start : start + ROW_CHUNK].astype(np.float64)
        y = Y[start : start + ROW_CHUNK].astype(np.float64)
        if x_mean is not None:
            x -= x_mean
        if y_mean is not None:
            y -= y_mean
        gram += x.T @ x
        corr += x.T @ y
        y_norm2 += np.einsum("ij,ij->j", y, y)
    return _Problem(gram / m, corr / m, y_norm2 / m)


def _solve_path(
    problem: _Problem, grid: np.ndarray, tol: float, max_sweeps: int, active: np.ndarray | None = None
) -> Iterator[np.ndarray]:
    """Yield the L × n float64 coefficients at each row of ``grid`` (k × n), warm-started downwards.

    The yielded array is the solver's own state: copy it to keep it past the next step. ``active``
    (one flag per target, default all) is read before every λ: the caller may clear flags between
    steps to stop solving those targets, whose columns then keep their last solution. The path ends
    early once no target is active.
    """
    num_units, n = problem.corr.shape
    coef = np.zeros((num_units, n))
    gradient = problem.corr.copy()  # XᵀR/m at coef = 0
    previous = np.maximum(np.abs(gradient).max(axis=0), grid[0])
    unconverged = 0
    for lam in grid:
        live = np.ones(n, dtype=bool) if active is None else np.asarray(active, dtype=bool).copy()
        if not live.any():
            break
        working = _strong_rule(coef, gradient, lam, previous) & live
        todo = live
        while True:
            unconverged += _solve_working_sets(problem, coef, working, lam, tol, max_sweeps, todo)
            # only the targets just solved changed: refresh their gradient (all of it on a full step)
            solved: slice | np.ndarray = slice(None) if todo.all() else np.flatnonzero(todo)
            gradient[:, solved] = _full_gradient(problem, coef[:, solved], problem.corr[:, solved])
            violators = (np.abs(gradient) > lam) & ~working & todo
            todo = violators.any(axis=0)  # only these targets need another solve
            if not todo.any():
                break
            working |= violators
        previous = lam
        yield coef
    if unconverged:
        warnings.warn(
            f"the LASSO path did not reach the duality gap tol={tol} within max_sweeps={max_sweeps} "
            f"for {unconverged} (target, λ) fits; raise max_sweeps or tol",
            RuntimeWarning,
            stacklevel=3,
        )


def _strong_rule(coef: np.ndarray, gradient: np.ndarray, lam: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """Sequential strong rule: the units worth solving for at λ, per target (units × targets).

    Non-zero coefficients stay; a zero one joins if its gradient at the previous solution is at
    least 2λ − λ_prev. The rule can miss a unit; the KKT check after the solve adds it back.
    """
    return (coef != 0) | (np.abs(gradient) >= 2 * lam - previous)


def _full_gradient(problem: _Problem, coef: np.ndarray, corr: np.ndarray | None = None) -> np.ndarray:
    """XᵀY/m − G·B for every target: one product over the units that are non-zero for some target."""
    corr = problem.corr if corr is None else corr
    rows = np.flatnonzero((coef != 0).any(axis=1))
    if rows.size == 0:
        return corr.copy()
    return corr - problem.gram[rows].T @ coef[rows]


def _solve_working_sets(
    problem: _Problem, coef: np.ndarray, working: np.ndarray, lam: np.ndarray, tol: float, max_sweeps: int, todo: np.ndarray
) -> int:
    """Coordinate descent on each target's working set; updates ``coef`` in place.

    Targets with small working sets are batched with their own gathered Gram blocks; targets whose
    working set is a large part of all units (small λ, where noise enters the fit) share blocked
    sweeps over the full Gram matrix instead, whose cost is matrix products rather than gathers.
    Only the targets marked in ``todo`` are solved. Returns how many targets stopped at
    ``max_sweeps`` before reaching the gap tolerance.
    """
    sizes = working.sum(axis=0)
    coef[:, todo & (sizes == 0)] = 0.0
    dense = todo & (sizes > max(DENSE_MIN_SIZE, DENSE_FRACTION * working.shape[0]))
    unconverged = 0
    if dense.any():
        unconverged += _dense_sweeps(problem, coef, working, np.flatnonzero(dense), lam, tol, max_sweeps)
    targets = np.flatnonzero(todo & (sizes > 0) & ~dense)
    order = targets[np.argsort(sizes[targets], kind="stable")]
    start = 0
    while start < order.size:
        end = start + 1
        while end < order.size and (end + 1 - start) * int(sizes[order[end]]) ** 2 * 8 <= BATCH_BYTES:
            end += 1
        unconverged += _WorkingSetBatch(problem, coef, working, order[start:end], lam, tol).solve(max_sweeps)
        start = end
    return unconverged


def _dense_sweeps(
    problem: _Problem, coef: np.ndarray, working: np.ndarray, targets: np.ndarray, lam: np.ndarray, tol: float, max_sweeps: int
) -> int:
    """Blocked coordinate descent for targets with large working sets, all of them at once.

    The units U in any of their working sets are swept in blocks of ``DENSE_BLOCK``: inside a block,
    exact coordinate updates on the block's small Gram matrix (vectorised over targets); after it,
    one product G[U, block]·ΔB keeps every target's gradient on U current (the caller recomputes
    the full gradient for the KKT check). Converged targets leave the set after each sweep.
    """
    units = np.flatnonzero(working[:, targets].any(axis=1))
    gram = problem.gram if units.size == problem.gram.shape[0] else problem.gram[np.ix_(units, units)]
    corr = problem.corr[np.ix_(units, targets)]
    b_all = coef[np.ix_(units, targets)]
    r_all = corr - gram @ b_all
    mask = working[np.ix_(units, targets)]
    diagonal = np.diag(gram).copy()
    inverse_diagonal = np.where(diagonal > 0, 1.0 / np.where(diagonal > 0, diagonal, 1.0), 0.0)
    lam_t, y_norm2 = lam[targets], problem.y_norm2[targets]
    live = np.arange(targets.size)
    for _ in range(max_sweeps):
        b, r, w, lam_l = b_all[:, live], r_all[:, live], mask[:, live], lam_t[live]
        for start in range(0, units.size, DENSE_BLOCK):
            stop = min(start + DENSE_BLOCK, units.size)
            _sweep_block(gram, b, r, start, stop, diagonal, inverse_diagonal[start:stop, None] * w[start:stop], lam_l)
        b_all[:, live], r_all[:, live] = b, r
        # units outside the working sets are left to the KKT check, as in the gathered batches
        gap = _gap(b, np.where(w, r, 0.0), corr[:, live], y_norm2[live], lam_l, axis=0)
        live = live[gap > tol * y_norm2[live]]
        if live.size == 0:
            break
    coef[np.ix_(units, targets)] = b_all
    return int(live.size)


def _sweep_block(
    gram: np.ndarray, b: np.ndarray, r: np.ndarray, start: int, stop: int, diagonal: np.ndarray, scale: np.ndarray, lam: np.ndarray
) -> None:
    """Exact coordinate updates of units start..stop for every target, then one product for the rest.

    ``b`` and ``r`` (units × targets) are updated in place: rows start..stop by the updates
    themselves, the other rows by G[other, block]·ΔB. ``scale`` is 1/G_kk, zero outside a target's
    working set (those coefficients stay zero).
    """
    block_gram = gram[start:stop, start:stop]
    b_block, r_block = b[start:stop], r[start:stop]  # views
    before = b_block.copy()
    for k in range(stop - start):
        z = r_block[k] + diagonal[start + k] * b_block[k]
        new = (z - np.clip(z, -lam, lam)) * scale[k]
        delta = new - b_block[k]
        if delta.any():
            r_block -= block_gram[:, k : k + 1] * delta
            b_block[k] = new
    change = b_block - before
    if change.any():
        if start > 0:
            r[:start] -= gram[:start, start:stop] @ change
        if stop < r.shape[0]:
            r[stop:] -= gram[stop:, start:stop] @ change


def _gap(b: np.ndarray, r: np.ndarray, corr: np.ndarray, y_norm2: np.ndarray, lam: np.ndarray, axis: int) -> np.ndarray:
    """scikit-learn's duality gap in Gram form, per target (``axis`` runs over units)."""
    b_corr = (b * corr).sum(axis=axis)
    residual_norm2 = y_norm2 - b_corr - (b * r).sum(axis=axis)  # ||y − Xb||²/m
    dual_norm = np.maximum(np.abs(r).max(axis=axis), lam)
    scale = lam / dual_norm
    return 0.5 * residual_norm2 * (1 + scale**2) + lam * np.abs(b).sum(axis=axis) - scale * (y_norm2 - b_corr)


class _WorkingSetBatch:
    """Targets × working-set positions, padded to the batch's largest working set.

    Padded positions get a unit diagonal, zero off-diagonal Gram entries and zero correlation, so
    their coefficient stays exactly zero without a branch in the sweep.
    """

    def __init__(
        self, problem: _Problem, coef: np.ndarray, working: np.ndarray, targets: np.ndarray, lam: np.ndarray, tol: float
    ) -> None:
        target_pos, unit = np.nonzero(working[:, targets].T)
        counts = np.bincount(target_pos, minlength=targets.size)
        width = int(counts.max())
        offsets = np.concatenate(([0], np.cumsum(counts)[:-1]))
        position = np.arange(target_pos.size) - offsets[target_pos]
        index = np.zeros((targets.size, width), dtype=np.intp)
        valid = np.zeros((targets.size, width), dtype=bool)
        index[target_pos, position] = unit
        valid[target_pos, position] = True

        gram = problem.gram[index[:, :, None], index[:, None, :]]
        gram *= valid[:, :, None]
        gram *= valid[:, None, :]
        diagonal = np.einsum("tkk->tk", gram)
        pad_diagonal = np.where(valid, diagonal, 1.0)
        gram[:, np.arange(width), np.arange(width)] = pad_diagonal
        column = targets[:, None]
        self.corr = np.where(valid, problem.corr[index, column], 0.0)
        self.b = np.where(valid, coef[index, column], 0.0)
        self.gram = gram
        self.diagonal = pad_diagonal
        # A unit that never varies (zero Gram diagonal) keeps a zero coefficient, as in scikit-learn.
        self.inverse_diagonal = np.where(pad_diagonal > 0, 1.0 / np.where(pad_diagonal > 0, pad_diagonal, 1.0), 0.0)
        self.residual_corr = self.corr - np.matmul(gram, self.b[:, :, None])[:, :, 0]
        self.lam = lam[targets]
        self.threshold = tol * problem.y_norm2[targets]
        self.y_norm2 = problem.y_norm2[targets]
        self.targets, self.index, self.valid = targets, index, valid
        self.coef = coef

    def solve(self, max_sweeps: int) -> int:
        for _ in range(max_sweeps):
            self._sweep()
            done = self._duality_gap() <= self.threshold
            if done.all():
                self._write_back(np.ones(done.size, dtype=bool))
                return 0
            if done.sum() * 2 >= done.size:
                self._write_back(done)
                self._keep(~done)
        self._write_back(np.ones(self.targets.size, dtype=bool))
        return int(self.targets.size)

    def _sweep(self) -> None:
        b, r, lam = self.b, self.residual_corr, self.lam
        for k in range(b.shape[1]):
            old = b[:, k]
            z = r[:, k] + self.diagonal[:, k] * old
            new = np.sign(z) * np.maximum(np.abs(z) - lam, 0.0) * self.inverse_diagonal[:, k]
            delta = new - old
            if delta.any():
                r -= self.gram[:, k, :] * delta[:, None]
                b[:, k] = new

    def _duality_gap(self) -> np.ndarray:
        """The duality gap per target on its working set (the units left out are checked later)."""
        return _gap(self.b, self.residual_corr, self.corr, self.y_norm2, self.lam, axis=1)

    def _write_back(self, which: np.ndarray) -> None:
        valid = self.valid[which]
        rows, positions = np.nonzero(valid)
        columns = self.targets[which][rows]
        self.coef[self.index[which][rows, positions], columns] = self.b[which][rows, positions]

    def _keep(self, which: np.ndarray) -> None:
        for name in ("gram", "diagonal", "inverse_diagonal", "corr", "b", "residual_corr", "lam", "threshold", "y_norm2", "targets", "index", "valid"):
            setattr(self, name, getattr(self, name)[which])


# ---------------------------------------------------------------------------------------------
# Held-out evaluation.


def _predict(x_held: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """Held-out predictions X_h·B over the units non-zero for some target only."""
    rows = np.flatnonzero((coef != 0).any(axis=1))
    if rows.size == 0:
        return np.zeros((x_held.shape[0], coef.shape[1]))
    return x_held[:, rows] @ coef[rows]


def _scores(x_score: np.ndarray, y_score: np.ndarray, coef: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(R², Spearman) per target of the chosen fit on the scoring models (centred by the training
    means, so R² compares against predicting the training mean)."""
    pred = _predict(x_score, coef)
    baseline = (y_score**2).mean(axis=0)
    mse = ((y_score - pred) ** 2).mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(baseline > 0, 1.0 - mse / np.where(baseline > 0, baseline, 1.0), np.nan)
    return r2, _column_spearman(pred, y_score)


def _column_spearman(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Spearman correlation per column; NaN where either column is constant."""
    a = stats.rankdata(pred, axis=0)
    b = stats.rankdata(truth, axis=0)
    a -= a.mean(axis=0)
    b -= b.mean(axis=0)
    denom = np.sqrt((a**2).sum(axis=0) * (b**2).sum(axis=0))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denom > 0, (a * b).sum(axis=0) / np.where(denom > 0, denom, 1.0), np.nan)
