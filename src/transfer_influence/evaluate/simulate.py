"""A study simulator with known ground-truth influences (numpy only).

Outputs follow an additive model with the noise structure seen in real studies:

    f_i(t_j) = base_j + Σ_k mask_ik·β_kj + Σ_(k,l) mask_ik·mask_il·γ_kl,c(j)
               + u_i + v_i,c(j) + e_ij

β_kj = B_k,c(j) + δ_kj are class effects per target class plus per-example deviations, γ sparse
pairwise interactions, and u (per model), v (per model and target class) and e (per model and
example) training noise; given design blocks, ``block_noise`` adds a shift shared by a block's
models (overall and per target class), as one training seed per block gives. Every design here
gives each model a uniformly random set of s classes (s = round(α·K) for iid, K/2 for complement,
⌊α·K⌋ for partition), so both estimands are known exactly:

* difference of means (``estimator="dim"``):

    Infl_kj = β_kj − Σ_{l≠k} β_lj/(K−1) + (s−1)/(K−1)·Σ_{l≠k} γ_kl
              − 2(s−1)/((K−1)(K−2))·Σ_{pairs l<m, both ≠ k} γ_lm

* regression on the mask (``estimator="ridge"`` without penalty): a row of a fixed-size mask
  always sums to s, so only coefficients relative to the average class are identified, and the
  minimum-norm solution estimates c_k − mean_l c_l. Without interactions c = β. An interaction
  x_a·x_b projects onto the masks (with an intercept) as (s−1)/(K−2)·(x_a + x_b) + constant: by
  symmetry only x_a + x_b can enter, and Cov(x_a·x_b, x_a + x_b)/Var(x_a + x_b) = (s−1)/(K−2) for
  uniformly random s-subsets — and the same within balanced blocks (partition, complement), so
  block fixed effects leave the estimand unchanged. Hence
  c_k = β_k + (s−1)/(K−2)·Σ_l γ_kl, centred over classes.

so designs and estimators can be scored exactly and in milliseconds. ``from_study`` calibrates the
effect and noise sizes on a real study.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..errors import InputError
from ..estimate import group_means


@dataclass(frozen=True)
class SimulatorSpec:
    num_classes: int = 72
    num_target_classes: int = 10
    examples_per_class: int = 200
    effect_sd: float = 0.006
    """sd of class × target-class effects B."""
    relevant_per_target_class: int = 3
    relevant_effect: float = 0.03
    """a few classes per target class get an extra positive effect of this size (look-alikes)."""
    example_effect_sd: float = 0.004
    interaction_pairs: int = 30
    interaction_sd: float = 0.01
    model_noise: float = 0.015
    model_class_noise: float = 0.03
    example_noise: float = 0.08
    base: float = 0.85
    block_noise: float = 0.0
    """sd of a shift shared by the models of one design block (``train.seeding: block`` gives them
    one seed), drawn per block overall and per block × target class; only where ``outputs`` is
    given the blocks. Why: it is what makes a blocked design's models dependent, which the
    bootstrap and the intervals must respect."""
    seed: int = 0


class StudySimulator:
    def __init__(self, spec: SimulatorSpec = SimulatorSpec()) -> None:
        self.spec = spec
        rng = np.random.default_rng(spec.seed)
        k, c = spec.num_classes, spec.num_target_classes
        self.target_labels = np.repeat(np.arange(c), spec.examples_per_class)
        n = self.target_labels.size
        effects = rng.normal(0, spec.effect_sd, size=(k, c))
        for target in range(c):
            chosen = rng.choice(k, size=min(spec.relevant_per_target_class, k), replace=False)
            effects[chosen, target] += spec.relevant_effect
        self.class_effects = effects
        self.example_effects = effects[:, self.target_labels] + rng.normal(0, spec.example_effect_sd, size=(k, n))
        self.base = np.clip(spec.base + rng.normal(0, 0.05, size=n), 0.0, 1.0)
        pairs = rng.choice(k * (k - 1) // 2, size=min(spec.interaction_pairs, k * (k - 1) // 2), replace=False)
        upper = np.array(np.triu_indices(k, 1)).T[pairs]
        self.interactions = [(int(a), int(b), rng.normal(0, spec.interaction_sd, size=c)) for a, b in upper]

    @property
    def num_targets(self) -> int:
        return int(self.target_labels.size)

    def outputs(self, masks: np.ndarray, seed: int, blocks: np.ndarray | None = None) -> np.ndarray:
        """(m × n) simulated outputs for the models' masks, with fresh training noise; ``blocks``
        (one design block per model) adds the spec's ``block_noise`` shared within each block."""
        s, rng = self.spec, np.random.default_rng(seed)
        masks = np.asarray(masks, dtype=np.float64)
        m = masks.shape[0]
        y = self.base + masks @ self.example_effects
        per_class = np.zeros((m, s.num_target_classes))
        for a, b, gamma in self.interactions:
            per_class += (masks[:, a] * masks[:, b])[:, None] * gamma
        per_class += rng.normal(0, s.model_class_noise, size=per_class.shape)
        y += per_class[:, self.target_labels]
        y += rng.normal(0, s.model_noise, size=(m, 1))
        y += rng.normal(0, s.example_noise, size=y.shape)
        if blocks is not None and s.block_noise > 0:
            y += self._block_shifts(np.asarray(blocks), m, rng)
        return y.astype(np.float32)

    def _block_shifts(self, blocks: np.ndarray, m: int, rng: np.random.Generator) -> np.ndarray:
        """(m × n) shifts shared by the models of each block: one overall, one per target class."""
        if blocks.shape != (m,):
            raise InputError(f"blocks must hold one design block id per model ({m}), got shape {blocks.shape}")
        _, index = np.unique(blocks, return_inverse=True)
        num_blocks, sd = int(index.max()) + 1, self.spec.block_noise
        overall = rng.normal(0, sd, size=(num_blocks, 1))
        per_class = rng.normal(0, sd, size=(num_blocks, self.spec.num_target_classes))
        return (overall + per_class)[index][:, self.target_labels]

    def true_influence(
        self, alpha: float | None = None, level: str = "target_class", *, size: int | None = None,
        estimator: str = "dim",
    ) -> np.ndarray:
        """The estimand of ``estimator`` for uniformly random subsets of ``size`` classes.

        ``size`` defaults to round(α·K), the iid design's; pass the design's own size where it
        differs (⌊α·K⌋ for partition, K/2 for complement). ``estimator`` is ``"dim"`` (difference
        of means) or ``"ridge"`` (unpenalised regression on the mask: effects relative to the
        average class, see the module docstring).
        """
        k = self.spec.num_classes
        if size is None:
            if alpha is None:
                raise InputError("give the subset ratio alpha or the subset size")
            size = int(round(alpha * k))
        if not 1 <= size <= k - 1:
            raise InputError(f"subsets of {size} of {k} classes leave no class both in and out; choose 1 ≤ size ≤ {k - 1}")
        if estimator == "dim":
            infl = self._difference_of_means_truth(size)
        elif estimator == "ridge":
            infl = self._regression_truth(size)
        else:
            raise InputError(f"unknown estimator {estimator!r}; choose 'dim' or 'ridge'")
        if level == "example":
            return infl
        if level == "target_class":
            return group_means(infl, self.target_labels, self.spec.num_target_classes)
        if level == "overall":
            return infl.mean(axis=1, keepdims=True)
        raise InputError(f"unknown level {level!r}; choose 'example', 'target_class' or 'overall'")

    def _interaction_sums(self) -> tuple[np.ndarray, np.ndarray]:
        """Per example: Σ_l γ_kl for each class k (K × n), and Σ over all pairs (n)."""
        per_class = np.zeros((self.spec.num_classes, self.num_targets))
        pair_total = np.zeros(self.num_targets)
        for a, b, gamma in self.interactions:
            g = gamma[self.target_labels]
            per_class[a] += g
            per_class[b] += g
            pair_total += g
        return per_class, pair_total

    def _difference_of_means_truth(self, size: int) -> np.ndarray:
        k = self.spec.num_classes
        beta = self.example_effects
        infl = beta - (beta.sum(axis=0, keepdims=True) - beta) / (k - 1)
        per_class, pair_total = self._interaction_sums()
        infl += (size - 1) / (k - 1) * per_class
        infl -= 2 * (size - 1) / ((k - 1) * (k - 2)) * (pair_total - per_class)
        return infl

    def _regression_truth(self, size: int) -> np.ndarray:
        k = self.spec.num_classes
        per_class, _ = self._interaction_sums()
        coef = self.example_effects + (size - 1) / (k - 2) * per_class
        return coef - coef.mean(axis=0, keepdims=True)

    @classmethod
    def from_study(cls, results, kind: str = "p_true", seed: int = 0) -> "StudySimulator":  # type: ignore[no-untyped-def]
        """A simulator whose effect and noise sizes match a real study's (measured, not guessed).

        Effects: ridge coefficients of the per-target-class outputs on the mask, their sd and the
        size of the largest ones; noise: the residual variance split into per-model, per-model ×
        target-class and per-example parts.
        """
        from ..estimate import datamodel_influence

        y = np.asarray(results.outputs(kind), dtype=np.float64)
        labels = results.target_labels
        groups = group_means(y, labels, len(results.target_class_names))
        fit = datamodel_influence(results.masks, groups).values.astype(np.float64)
        residual = groups - groups.mean(0) - (results.masks - results.masks.mean(0)) @ fit
        model_part = residual.mean(axis=1)
        per_example = y - y.mean(axis=0) - groups[:, labels] + groups.mean(0)[labels]
        counts = np.bincount(labels)
        spec = SimulatorSpec(
            num_classes=len(results.class_names),
            num_target_classes=len(results.target_class_names),
            examples_per_class=int(np.median(counts)),
            effect_sd=float(np.median(np.abs(fit)) * 1.4826),
            relevant_effect=float(np.sort(fit, axis=0)[-3:].mean() - np.median(fit)),
            model_noise=float(model_part.std()),
            model_class_noise=float((residual - model_part[:, None]).std()),
            example_noise=float(per_example.std()),
            base=float(y.mean()),
            seed=seed,
        )
        return cls(spec)

    def with_noise_scale(self, factor: float) -> "StudySimulator":
        s = self.spec
        return StudySimulator(replace(s, model_noise=s.model_noise * factor, model_class_noise=s.model_class_noise * factor,
                                      example_noise=s.example_noise * factor))
