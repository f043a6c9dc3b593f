"""Baselines: do the study's backbones beat a random-init one, and how far from the all-source one?"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..study.results import StudyResults


@dataclass(frozen=True)
class BaselineSummary:
    """Target accuracy of each baseline backbone (mean, std, count) beside the subset models'."""

    rows: dict[str, tuple[float, float, int]]


def baseline_summary(results: StudyResults) -> BaselineSummary:
    rows: dict[str, tuple[float, float, int]] = {}
    labels = {
        "random_init": "random-init backbone + same head",
        "all_source": "backbone trained on all source classes",
    }
    for kind, label in labels.items():
        acc = results.baselines.get(kind, np.zeros(0))
        if acc.size:
            rows[label] = (float(acc.mean()), float(acc.std(ddof=1)) if acc.size > 1 else 0.0, int(acc.size))
    if results.num_models:
        acc = results.target_accuracy
        alpha = results.config.design.alpha
        rows[f"backbones on random {alpha:g} subsets (the study's models)"] = (
            float(acc.mean()),
            float(acc.std(ddof=1)) if acc.size > 1 else 0.0,
            int(acc.size),
        )
    return BaselineSummary(rows)
