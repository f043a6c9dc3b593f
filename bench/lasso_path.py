"""Claim: the multi-target LASSO path is ≥ 10× faster than a loop of scikit-learn `Lasso` per target.

Problem: m models with binary inclusion masks over L source examples (density 0.5), n float32
targets, each driven by a few true source examples (`--support`, effects of random sign and size
0.5–1) plus Gaussian noise (`--r2` sets the share of variance the signal explains). Timed:

* ours: `lasso_datamodel(masks, outputs, n_lambdas, holdout=0.1, patience=None)` — the whole path
  (per-target grid from λ_max down to 0.01·λ_max; `patience=None` turns off the early stop along
  the path that `lasso_datamodel` uses by default, so both solvers fit every λ), held-out error of
  every λ, the chosen λ and its coefficients;
* scikit-learn: for a random sample of `--sample` targets, `Lasso(alpha=λ, fit_intercept=False,
  warm_start=True)` along the same per-target grid on the same centred training models (float32,
  Fortran-ordered once outside the timing so that no fit copies X), with the same held-out
  prediction per λ; its time per target is scaled to all n targets;
* scikit-learn again with a shared precomputed Gram matrix (`precompute=G`; Xᵀy is recomputed by
  every fit) — not the default, but a stronger use of the library; G's own cost is added once.

Both solvers use the same duality-gap tolerance (`--tol`, scikit-learn's default 1e-4, relative to
yᵀy). The objectives of both are compared on the sampled targets at a few λ, in float64. Peak
memory: the process's peak resident set during our fit (Linux VmHWM, reset before it), next to
the inputs' size.

    python bench/lasso_path.py [--models 20000] [--units 5000] [--targets 2000] [--sample 10]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import Lasso

from _setup import ensure_malloc_tuning
from transfer_influence import lasso_datamodel, lasso_path
from transfer_influence.estimate.lasso import lasso_objective


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _simulate(m: int, units: int, n: int, support: int, r2: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    masks = np.empty((m, units), dtype=bool)
    for start in range(0, m, 2048):
        masks[start : start + 2048] = rng.random((min(2048, m - start), units), dtype=np.float32) < 0.5
    truth = np.zeros((units, n), dtype=np.float32)
    for j in range(n):
        truth[rng.choice(units, size=support, replace=False), j] = rng.choice([-1.0, 1.0], size=support) * rng.uniform(0.5, 1.0, size=support)
    signal_var = 0.25 * (truth.astype(np.float64) ** 2).sum(axis=0)
    noise_sd = np.sqrt(signal_var * (1 - r2) / r2).astype(np.float32)
    outputs = np.empty((m, n), dtype=np.float32)
    for start in range(0, m, 2048):
        block = masks[start : start + 2048].astype(np.float32)
        outputs[start : start + 2048] = block @ truth + rng.standard_normal((block.shape[0], n), dtype=np.float32) * noise_sd
    return masks, outputs, truth


def _sklearn_loop(x_train, y_train, x_held, y_held, grids, tol, gram=None):  # type: ignore[no-untyped-def]
    """Per target: warm-started Lasso along its grid, held-out error per λ, keep the best."""
    coefs = []
    for j in range(y_train.shape[1]):
        started = time.perf_counter()
        y = np.ascontiguousarray(y_train[:, j])
        extra = {} if gram is None else {"precompute": gram}
        model = Lasso(alpha=1.0, fit_intercept=False, warm_start=True, tol=tol, max_iter=1000, **extra)
        path, best = [], (np.inf, None)
        for lam in grids[:, j]:
            model.set_params(alpha=lam)
            model.fit(x_train, y, check_input=False)
            pred = x_held @ model.coef_
            mse = float(((y_held[:, j] - pred) ** 2).mean())
            path.append(model.coef_.copy())
            if mse < best[0]:
                best = (mse, model.coef_.copy())
        coefs.append(np.stack(path))
        print(f"    target {j}: {time.perf_counter() - started:.2f} s", flush=True)
    return np.stack(coefs, axis=-1)  # k × L × sample


def main() -> None:
    ensure_malloc_tuning()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=20000)
    parser.add_argument("--units", type=int, default=5000)
    parser.add_argument("--targets", type=int, default=2000)
    parser.add_argument("--lambdas", type=int, default=20)
    parser.add_argument("--support", type=int, default=10)
    parser.add_argument("--r2", type=float, default=0.5)
    parser.add_argument("--sample", type=int, default=10)
    parser.add_argument("--tol", type=float, default=1e-4)
    parser.add_argument("--skip-gram-baseline", action="store_true")
    args = parser.parse_args()
    m, units, n = args.models, args.units, args.targets

    masks, outputs, truth = _simulate(m, units, n, args.support, args.r2, seed=0)
    input_mib = (masks.nbytes + outputs.nbytes) / 2**20
    print(f"m={m} models, L={units} units, n={n} targets (float32), {args.lambdas} λ per target, tol={args.tol}")
    print(f"inputs: {input_mib:.0f} MiB (bool masks + float32 outputs)")

    measured = _reset_peak_rss()
    start = time.perf_counter()
    result = lasso_datamodel(masks, outputs, n_lambdas=args.lambdas, holdout=0.1, seed=0, tol=args.tol, patience=None)
    t_ours = time.perf_counter() - start
    peak = _peak_rss_mib()
    print(f"ours: lasso_datamodel {t_ours:.1f} s ({t_ours / n * 1e3:.1f} ms per target); "
          f"peak RSS during the fit {peak:.0f} MiB" + ("" if measured else " (process peak: VmHWM could not be reset)"))
    found = result.values != 0
    real = truth != 0
    print(f"  held-out R² median {np.nanmedian(result.heldout_r2):.3f}; true effects found "
          f"{(found & real).sum() / real.sum():.3f}; selected per target {found.sum(0).mean():.1f} (true {args.support})")

    train = ~result.heldout_models
    mask_mean = masks[train].mean(axis=0)
    out_mean = outputs[train].mean(axis=0)
    x_train = np.asfortranarray(masks[train].astype(np.float32) - mask_mean.astype(np.float32))
    x_held = masks[~train].astype(np.float32) - mask_mean.astype(np.float32)
    rng = np.random.default_rng(1)
    sample = np.sort(rng.choice(n, size=min(args.sample, n), replace=False))
    y_train = np.ascontiguousarray(outputs[train][:, sample] - out_mean[sample].astype(np.float32))
    y_held = outputs[~train][:, sample] - out_mean[sample].astype(np.float32)
    grids = result.lambdas[:, sample]

    start = time.perf_counter()
    theirs = _sklearn_loop(x_train, y_train, x_held, y_held, grids, args.tol)
    t_loop = time.perf_counter() - start
    t_loop_all = t_loop / sample.size * n
    print(f"scikit-learn Lasso loop (default precompute=False): {t_loop:.1f} s for {sample.size} targets "
          f"= {t_loop / sample.size:.2f} s per target → {t_loop_all:.0f} s scaled to {n} targets")
    print(f"  RATIO (scaled loop / ours): {t_loop_all / t_ours:.1f}×")

    if not args.skip_gram_baseline:
        start = time.perf_counter()
        gram = x_train.T.astype(np.float64) @ x_train.astype(np.float64)
        t_gram = time.perf_counter() - start
        start = time.perf_counter()
        _sklearn_loop(x_train.astype(np.float64, order="F"), y_train.astype(np.float64), x_held, y_held, grids, args.tol, gram=gram)
        t_gram_loop = time.perf_counter() - start
        t_gram_all = t_gram + t_gram_loop / sample.size * n
        print(f"scikit-learn Lasso loop with a shared precomputed Gram: Gram {t_gram:.1f} s once + "
              f"{t_gram_loop / sample.size:.2f} s per target → {t_gram_all:.0f} s scaled; RATIO {t_gram_all / t_ours:.1f}×")

    ours = lasso_path(x_train, y_train, grids, tol=args.tol)
    x64 = x_train.astype(np.float64)
    worst = 0.0
    for i in sorted({0, args.lambdas // 4, args.lambdas // 2, 3 * args.lambdas // 4, args.lambdas - 1}):
        a = lasso_objective(x64, y_train, ours[i], grids[i])
        b = lasso_objective(x64, y_train, theirs[i], grids[i])
        rel = np.abs(a - b) / b
        worst = max(worst, float(rel.max()))
        print(f"  λ index {i:2d}: objective ours/sklearn − 1: max {np.max((a - b) / b):+.2e}, min {np.min((a - b) / b):+.2e}")
    print(f"objective agreement on the sample: max relative difference {worst:.2e} ({'within' if worst <= 1e-4 else 'NOT within'} 1e-4)")


if __name__ == "__main__":
    main()
