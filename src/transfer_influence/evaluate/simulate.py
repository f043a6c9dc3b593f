"""A study simulator with known ground-truth influences (numpy only).

Outputs follow an additive model with the noise structure seen in real studies:

    f_i(t_j) = base_j + Σ_k mask_ik·β_kj + Σ_(k,l) mask_ik·mask_il·γ_kl,c(j)
               + u_i + v_i,c(j) + e_ij

β_kj = B_k,c(j) + δ_kj are class effects per target class plus per-example deviations, γ sparse
pairwise interactions, and u (per model), v (per model and target class) and e (per model and
example) training noise. For designs whose subsets are uniformly random sets of s = round(α·K)
classes (iid, complement and partition designs all are, model by model), the estimand of the
difference of means is known exactly:

    Infl_kj = β_kj − Σ_{l≠k} β_lj/(K−1) + (s−1)/(K−1)·Σ_{l≠k} γ_kl
              − 2(s−1)/((K−1)(K−2))·Σ_{pairs l<m, both ≠ k} γ_lm

so designs and estimators can be scored exactly and in milliseconds. ``from_study`` calibrates the
effect and noise sizes on a real study.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

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

    def outputs(self, masks: np.ndarray, seed: int) -> np.ndarray:
        """(m × n) simulated outputs for the models' masks, with fresh training noise."""
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
        return y.astype(np.float32)

    def true_influence(self, alpha: float, level: str = "target_class") -> np.ndarray:
        """The difference-of-means estimand for uniformly random subsets of round(α·K) classes."""
        k = self.spec.num_classes
        size = int(round(alpha * k))
        beta = self.example_effects
        infl = beta - (beta.sum(axis=0, keepdims=True) - beta) / (k - 1)
        gamma_per_example = np.zeros((k, self.num_targets))
        pair_total = np.zeros(self.num_targets)
        involving = np.zeros((k, self.num_targets))
        for a, b, gamma in self.interactions:
            g = gamma[self.target_labels]
            gamma_per_example[a] += g
            gamma_per_example[b] += g
            pair_total += g
            involving[a] += g
            involving[b] += g
        infl += (size - 1) / (k - 1) * gamma_per_example
        infl -= 2 * (size - 1) / ((k - 1) * (k - 2)) * (pair_total - involving)
        if level == "example":
            return infl
        if level == "target_class":
            return group_means(infl, self.target_labels, self.spec.num_target_classes)
        if level == "overall":
            return infl.mean(axis=1, keepdims=True)
        raise ValueError(f"unknown level {level!r}")

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
