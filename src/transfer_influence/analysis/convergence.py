"""All convergence diagnostics of one study, for every output kind and estimator, as one object."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np

from ..errors import InputError
from ..progress import Progress
from ..evaluate.bootstrap import BootstrapCurve, bootstrap_std
from ..evaluate.fdr import KnockoffFDR, knockoff_fdr
from ..evaluate.reliability import ReliabilityCurve, held_out_spearman, split_half_reliability
from ..study.design import knockoff_masks
from ..study.results import StudyResults


def study_split_half(
    results: StudyResults, outputs: np.ndarray, estimator: str, **options: object
) -> dict[str, ReliabilityCurve]:
    """Split-half reliability of a study's influences, with its target labels and design blocks."""
    return split_half_reliability(
        results.masks, outputs, results.target_labels, len(results.target_class_names), estimator,
        blocks=results.blocks, **options,  # type: ignore[arg-type]
    )


def study_held_out(results: StudyResults, outputs: np.ndarray, estimator: str) -> dict[str, float]:
    """Held-out Spearman of a study's influences, with its target labels and design blocks."""
    return held_out_spearman(
        results.masks, outputs, results.target_labels, len(results.target_class_names), estimator,
        blocks=results.blocks,
    )


@dataclass
class Diagnostics:
    """Split-half curves and held-out Spearman per (output kind, estimator), plus the bootstrap and
    knockoff curves of the primary output kind."""

    num_models: int
    target_reliability: float
    reliability: dict[tuple[str, str], dict[str, ReliabilityCurve]] = field(default_factory=dict)
    held_out: dict[tuple[str, str], dict[str, float]] = field(default_factory=dict)
    bootstrap: BootstrapCurve | None = None
    knockoffs: KnockoffFDR | None = None

    def table(self) -> list[dict[str, object]]:
        """One row per (output kind, estimator, level): the numbers users compare."""
        rows = []
        for (kind, est), curves in self.reliability.items():
            for level, curve in curves.items():
                rows.append({
                    "output_kind": kind,
                    "estimator": est,
                    "level": level,
                    "split_half_spearman": round(curve.at_full_size, 4),
                    "models_per_half": int(curve.models_per_half[-1]) if curve.models_per_half.size else 0,
                    "full_study_reliability": round(curve.full_study_reliability, 4),
                    "held_out_spearman": round(self.held_out.get((kind, est), {}).get(level, float("nan")), 4),
                    f"models_for_split_half_{self.target_reliability:g}": int(round(curve.models_for(self.target_reliability)))
                    if np.isfinite(curve.spearman_brown_c) else None,
                })
        return rows

    def save(self, path: Path) -> None:
        payload = {
            "num_models": self.num_models,
            "target_reliability": self.target_reliability,
            "table": self.table(),
            "curves": {
                f"{kind}/{est}/{level}": {
                    "models_per_half": c.models_per_half.tolist(),
                    "spearman": c.spearman.tolist(),
                    "spread": c.spread.tolist(),
                    "spearman_brown_c": c.spearman_brown_c,
                }
                for (kind, est), curves in self.reliability.items()
                for level, c in curves.items()
            },
            "bootstrap": None if self.bootstrap is None else {
                "models": self.bootstrap.models.tolist(), "mean_std": self.bootstrap.mean_std.tolist()
            },
            "knockoffs": None if self.knockoffs is None else _knockoff_payload(self.knockoffs),
        }
        path.write_text(json.dumps(payload, indent=2))


KNOCKOFF_DEFINITIONS = {
    "knockoff_share": "paper App. F / Figure 30: share of knockoff classes among the top k of the joint "
    "ranking of real and knockoff classes by overall influence; 0.5 is chance, 0 means the top k are all real",
    "knockoff_plus_fdr": "knockoff+ estimate of the false-discovery rate among the top k real classes: "
    "(1 + knockoffs ranked above the k-th real class) / k, capped at 1",
}
"""What the saved knockoff curves are, written next to them so that the file explains itself."""


def _knockoff_payload(knockoffs: KnockoffFDR) -> dict[str, object]:
    return {
        "top_k": knockoffs.top_k.tolist(),
        "knockoff_share_positive": knockoffs.share_positive.tolist(),
        "knockoff_share_negative": knockoffs.share_negative.tolist(),
        "knockoff_plus_fdr_positive": knockoffs.fdr_plus_positive.tolist(),
        "knockoff_plus_fdr_negative": knockoffs.fdr_plus_negative.tolist(),
        "definitions": KNOCKOFF_DEFINITIONS,
    }


def diagnose(
    results: StudyResults,
    kinds: tuple[str, ...] = ("p_true",),
    estimators: tuple[str, ...] = ("dim", "ridge"),
    primary: tuple[str, str] = ("p_true", "dim"),
    target_reliability: float = 0.8,
    repeats: int = 4,
    points: int = 5,
    progress_stream: IO[str] | None = None,
    show_progress: bool = True,
) -> Diagnostics:
    """Run every diagnostic; curves for every (kind, estimator), the rest for ``primary``.

    Progress (one step per output kind × estimator, then the bootstrap and knockoffs) goes to
    ``progress_stream`` (standard error by default): a bar on a terminal, lines in logs.
    """
    if results.num_models < 8:
        raise InputError(f"diagnostics need at least 8 finished models, the study has {results.num_models}")
    out = Diagnostics(results.num_models, target_reliability)
    steps = len(kinds) * len(estimators) + 1
    with Progress(steps, "step", label="diagnostics", stream=progress_stream, enabled=show_progress) as progress:
        for kind in kinds:
            outputs = np.asarray(results.outputs(kind))
            for est in estimators:
                out.reliability[(kind, est)] = study_split_half(results, outputs, est, points=points, repeats=repeats)
                out.held_out[(kind, est)] = study_held_out(results, outputs, est)
                progress.update(f"{kind}/{est}")
        kind, est = primary
        outputs = np.asarray(results.outputs(kind))
        out.bootstrap = bootstrap_std(results.masks, outputs)
        fake = knockoff_masks(results.config, results.run_indices, len(results.class_names))
        out.knockoffs = knockoff_fdr(results.masks, fake, outputs, est)
        progress.update("bootstrap and knockoffs")
    return out
