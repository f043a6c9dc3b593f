"""Claim: the statistics fixes change what a study reports — old and new side by side on one study.

On a finished study (default: the demo's), for the study's output kind:

1. Standard errors and 95% intervals of the overall and per-target-class influences: difference
   of means with the pooled error (old) vs the block-level error (new); ridge with m − df − 1
   residual degrees of freedom (old) vs m − blocks − df (new), at the penalty GCV picks now.
2. The Benjamini–Hochberg list of significant classes (FDR 0.1) under old and new errors and
   degrees of freedom (old: m − 2 for both estimators).
3. Split-half Spearman of the class × target-class influences with halves cut at m/2 through a
   block (old) vs halves of whole blocks (new), same random block orders.
4. The knockoff statistic the report used to show under the paper's name (knockoffs ranked above
   the k-th real class, / k) vs the paper's share of knockoffs in the joint top k.
5. Coverage of the new 95% intervals on a simulator calibrated to this study, with this study's
   masks (its size and design): what a user of this study's intervals can expect.

    python bench/statistics_old_new.py [STUDY_DIR] [--coverage-studies 20]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import stats

from transfer_influence.estimate import class_influence, datamodel_influence, estimate, group_means
from transfer_influence.evaluate.fdr import knockoff_fdr
from transfer_influence.evaluate.reliability import split_half_reliability
from transfer_influence.evaluate.simulate import StudySimulator
from transfer_influence.study.design import design_subset_size, knockoff_masks
from transfer_influence.study.results import open_study


def _bh(p: np.ndarray, names: tuple[str, ...], fdr: float = 0.1) -> list[str]:
    adjusted = stats.false_discovery_control(p, method="bh")
    return sorted(names[k] for k in np.flatnonzero(adjusted <= fdr))


def errors_and_significance(results, y: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    masks, blocks, m = results.masks, results.blocks, results.num_models
    groups = 1 if blocks is None else np.unique(blocks).size
    overall = y.mean(axis=1, keepdims=True)
    per_class = group_means(y, results.target_labels, len(results.target_class_names))
    print("1-2. standard errors, 95% half-widths and BH lists (FDR 0.1), old vs new")
    for label, outputs in (("overall", overall), ("class x target class", per_class)):
        old_dim = class_influence(masks, outputs, results.class_names)
        new_dim = class_influence(masks, outputs, results.class_names, blocks=blocks)
        ridge = datamodel_influence(masks, outputs, results.class_names, blocks=blocks)
        old_ridge_dof = ridge.dof + groups - 1  # m − df − 1 at the same penalty
        old_ridge_se = ridge.stderr * np.sqrt(ridge.dof / old_ridge_dof)
        for name, old_se, old_dof, new in (("dim", old_dim.stderr, m - 2, new_dim), ("ridge", old_ridge_se, m - 2, ridge)):
            ratio = np.median(new.stderr / old_se)
            old_half = stats.t.ppf(0.975, old_dof) * old_se
            new_half = new.critical_value(0.95) * new.stderr
            print(f"  {label:>21} {name:>5}: stderr new/old median {ratio:.3f}; 95% half-width median "
                  f"{np.median(old_half):.5f} -> {np.median(new_half):.5f} (dof {old_dof} -> {new.dof:.0f})")
            if label == "overall":
                old_p = 2 * stats.t.sf(np.abs(new.values[:, 0] / old_se[:, 0]), old_dof)
                old_list, new_list = _bh(old_p, results.class_names), _bh(new.p_values()[:, 0], results.class_names)
                print(f"  {'':>21} {name:>5}: significant old {len(old_list)}, new {len(new_list)}; "
                      f"dropped {sorted(set(old_list) - set(new_list))}, added {sorted(set(new_list) - set(old_list))}")


def _old_cut_split_half(masks, y, blocks, estimator: str, repeats: int) -> float:  # type: ignore[no-untyped-def]
    """The old split: whole blocks in a random order, then cut at m/2 (through a block)."""
    rng = np.random.default_rng(0)
    m = masks.shape[0]
    ids = np.unique(blocks)
    scores = []
    for _ in range(repeats):
        order = np.concatenate([np.flatnonzero(blocks == b) for b in rng.permutation(ids)])
        a, b = order[: m // 2], order[m // 2 : 2 * (m // 2)]
        first = estimate(estimator, masks[a], y[a], blocks=blocks[a]).values
        second = estimate(estimator, masks[b], y[b], blocks=blocks[b]).values
        scores.append(stats.spearmanr(first.ravel(), second.ravel()).statistic)
    return float(np.mean(scores))


def reliability(results, y: np.ndarray, repeats: int) -> None:  # type: ignore[no-untyped-def]
    if results.blocks is None:
        print("3. split-half: the study has no blocks, so nothing changed")
        return
    per_class = group_means(y, results.target_labels, len(results.target_class_names))
    print("3. split-half Spearman, class x target class, at m/2 per half: old cut vs whole blocks")
    for estimator in ("dim", "ridge"):
        old = _old_cut_split_half(results.masks, per_class, results.blocks, estimator, repeats)
        new = split_half_reliability(
            results.masks, y, results.target_labels, len(results.target_class_names), estimator,
            levels=("target_class",), points=1, repeats=repeats, blocks=results.blocks,
        )["target_class"].at_full_size
        print(f"  {estimator:>5}: old {old:.3f}  new {new:.3f}")


def knockoffs(results, y: np.ndarray, estimator: str) -> None:  # type: ignore[no-untyped-def]
    fake = knockoff_masks(results.config, results.run_indices, len(results.class_names))
    result = knockoff_fdr(results.masks, fake, y, estimator)
    print(f"4. knockoffs ({estimator}): k, old statistic (knockoffs above k-th real / k), paper share, knockoff+")
    for k in (3, 5, 10, 15):
        i = int(np.searchsorted(result.top_k, k))
        if i >= result.top_k.size:
            continue
        old = max(0.0, result.fdr_plus_positive[i] - 1.0 / k)
        print(f"  top {k:>2} most positive: old {old:.2f}  paper share {result.share_positive[i]:.2f}  "
              f"knockoff+ {result.fdr_plus_positive[i]:.2f}")


def coverage(results, kind: str, studies: int) -> None:  # type: ignore[no-untyped-def]
    sim = StudySimulator.from_study(results, kind)
    size = design_subset_size(results.config.design.kind, len(results.class_names), results.config.design.alpha)
    masks, blocks = results.masks, results.blocks
    print(f"5. coverage of new 95% intervals, class x target class, simulator calibrated to this study "
          f"({results.num_models} models, subsets of {size}, {studies} simulated studies)")
    for estimator, penalty in (("dim", None), ("ridge", None), ("ridge", 0.0)):
        truth = sim.true_influence(size=size, level="target_class", estimator=estimator)
        hits = []
        for seed in range(studies):
            y = group_means(sim.outputs(masks, seed=seed), sim.target_labels, sim.spec.num_target_classes)
            if estimator == "dim":
                est = class_influence(masks, y, blocks=blocks)
            else:
                est = datamodel_influence(masks, y, blocks=blocks, ridge=penalty)
            low, high = est.interval(0.95)
            hits.append(((low <= truth) & (truth <= high)).mean())
        label = estimator if penalty is None else f"{estimator} (penalty 0)"
        label += " (GCV)" if estimator == "ridge" and penalty is None else ""
        print(f"  {label:>20}: {np.mean(hits):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", nargs="?", default="demo-study", type=Path)
    parser.add_argument("--coverage-studies", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=4)
    args = parser.parse_args()
    results = open_study(args.study, read_only=True)
    kind, estimator = results.config.analysis.output_kind, results.config.analysis.estimator
    y = np.asarray(results.outputs(kind), dtype=np.float32)
    print(f"{args.study}: {results.num_models} models, {len(results.class_names)} classes, design "
          f"{results.config.design.kind} alpha {results.config.design.alpha:g}, output {kind}")
    errors_and_significance(results, y)
    reliability(results, y, args.repeats)
    knockoffs(results, y, estimator)
    coverage(results, kind, args.coverage_studies)


if __name__ == "__main__":
    main()
