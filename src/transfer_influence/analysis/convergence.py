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
from ..evaluate.lds import LdsResult
from ..evaluate.reliability import (
    LEVELS, ReliabilityCurve, held_out_problem, held_out_spearman, split_half_reliability, unmeasured_units,
)
from ..study.design import knockoff_masks
from ..study.results import StudyResults
from .context import StudyContext
from .lds import study_lds

MIN_MODELS = 8
"""Fewest finished models any diagnostic measures (split halves of at least 4)."""
REPEATS = 3
"""Random splits per point of the split-half curves: ``diagnose`` and the report share it, so both
give the same numbers for the same study (the report's value, which BENCHMARKS.md quotes)."""
POINTS = 5
"""Half sizes measured on each split-half curve."""


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


def _finite(value: float, digits: int = 4) -> float | None:
    """A rounded number, or None where it could not be measured (JSON has no NaN)."""
    return round(float(value), digits) if np.isfinite(value) else None


@dataclass
class Diagnostics:
    """Split-half curves, held-out Spearman and the LDS per (output kind, estimator), plus the
    bootstrap and knockoff curves of the primary output kind and estimator.

    ``notes`` says which diagnostics were skipped and why (a study that passed the plan check can
    still be too small for a diagnostic that refits on part of its models); a skipped number is NaN
    in the curves and None in ``table()``."""

    num_models: int
    target_reliability: float
    reliability: dict[tuple[str, str], dict[str, ReliabilityCurve]] = field(default_factory=dict)
    held_out: dict[tuple[str, str], dict[str, float]] = field(default_factory=dict)
    bootstrap: BootstrapCurve | None = None
    knockoffs: KnockoffFDR | None = None
    lds: dict[tuple[str, str], dict[str, LdsResult]] = field(default_factory=dict)
    """Linear datamodeling score per (kind, estimator) and level, on the held-out split."""
    notes: list[str] = field(default_factory=list)
    primary: tuple[str, str] | None = None
    """The (output kind, estimator) of the bootstrap and knockoffs (the study's analysis settings)."""

    def table(self) -> list[dict[str, object]]:
        """One row per (output kind, estimator, level): the numbers users compare."""
        rows = []
        for (kind, est), curves in self.reliability.items():
            for level, curve in curves.items():
                lds = self.lds.get((kind, est), {}).get(level)
                rows.append({
                    "output_kind": kind,
                    "estimator": est,
                    "level": level,
                    "split_half_spearman": _finite(curve.at_full_size),
                    "models_per_half": int(curve.models_per_half[-1]) if curve.models_per_half.size else 0,
                    "full_study_reliability": _finite(curve.full_study_reliability),
                    "held_out_spearman": _finite(self.held_out.get((kind, est), {}).get(level, float("nan"))),
                    "lds": None if lds is None else _finite(lds.mean),
                    "lds_se": None if lds is None else _finite(lds.stderr),
                    f"models_for_split_half_{self.target_reliability:g}": int(round(curve.models_for(self.target_reliability)))
                    if np.isfinite(curve.spearman_brown_c) else None,
                })
        return rows

    def save(self, path: Path) -> None:
        payload = {
            "num_models": self.num_models,
            "target_reliability": self.target_reliability,
            "primary": None if self.primary is None else {"output_kind": self.primary[0], "estimator": self.primary[1]},
            "notes": self.notes,
            "table": self.table(),
            "curves": {
                f"{kind}/{est}/{level}": {
                    "models_per_half": c.models_per_half.tolist(),
                    "spearman": c.spearman.tolist(),
                    "spread": c.spread.tolist(),
                    "spearman_brown_c": _finite(c.spearman_brown_c, 6),
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
    repeats: int = REPEATS,
    points: int = POINTS,
    progress_stream: IO[str] | None = None,
    show_progress: bool = True,
) -> Diagnostics:
    """Run every diagnostic; curves, held-out scores and LDS for every (kind, estimator), the
    bootstrap and knockoffs for ``primary``. A diagnostic the study is too small for is skipped
    with a note (``Diagnostics.notes``) instead of failing; fewer than ``MIN_MODELS`` models is an
    error, since then nothing at all can be measured.

    Progress (one step per output kind × estimator, then the bootstrap and knockoffs) goes to
    ``progress_stream`` (standard error by default): a bar on a terminal, lines in logs.
    """
    if results.num_models < MIN_MODELS:
        raise InputError(
            f"diagnostics need at least {MIN_MODELS} finished models, the study has {results.num_models}; "
            "train more models (`transfer-influence run CONFIG --models N`)"
        )
    out = Diagnostics(results.num_models, target_reliability, primary=primary)
    held_out_note = held_out_problem(results.masks, results.blocks, unit_names=results.class_names)
    if held_out_note is not None:
        out.notes.append(f"held-out Spearman and LDS skipped: {held_out_note}.")
    steps = len(kinds) * len(estimators) + 1
    with Progress(steps, "step", label="diagnostics", stream=progress_stream, enabled=show_progress) as progress:
        for kind in kinds:
            outputs = np.asarray(results.outputs(kind))
            for est in estimators:
                out.reliability[(kind, est)] = study_split_half(results, outputs, est, points=points, repeats=repeats)
                out.held_out[(kind, est)] = study_held_out(results, outputs, est)
                if held_out_note is None:
                    out.lds[(kind, est)] = {level: study_lds(results, kind, est, level) for level in LEVELS}
                progress.update(f"{kind}/{est}")
        _note_empty_split_halves(out, results)
        kind, est = primary
        outputs = np.asarray(results.outputs(kind))
        out.bootstrap = bootstrap_std(results.masks, outputs, blocks=results.blocks)
        fake = knockoff_masks(results.config, results.run_indices, len(results.class_names))
        unmeasured = unmeasured_units(fake)
        if unmeasured.size:
            out.notes.append(
                f"knockoffs skipped: {unmeasured.size} of the {fake.shape[1]} knockoff classes (drawn from the design "
                f"with another seed) are in every or no subset of the {results.num_models} models; train more models"
            )
        else:
            out.knockoffs = knockoff_fdr(results.masks, fake, outputs, est)
        progress.update("bootstrap and knockoffs")
    return out


def diagnose_study(
    context: StudyContext,
    kinds: tuple[str, ...] | None = None,
    estimators: tuple[str, ...] = ("dim", "ridge"),
    target_reliability: float = 0.8,
    show_progress: bool = True,
) -> Diagnostics:
    """``diagnose`` on a study context: every output kind (``kinds`` None: all the study has) and
    ``estimators``, with the bootstrap and knockoffs of the context's output kind and estimator
    (where they are among those diagnosed). The report calls this with the same defaults, so that
    ``report`` and ``diagnose`` give the same numbers for the same study."""
    results = context.results
    kinds = results.output_kinds if kinds is None else kinds
    primary = (context.kind if context.kind in kinds else kinds[0],
               context.estimator if context.estimator in estimators else estimators[0])
    return diagnose(results, kinds, estimators, primary=primary, target_reliability=target_reliability,
                    show_progress=show_progress)


def _note_empty_split_halves(out: Diagnostics, results: StudyResults) -> None:
    """A note when no split of the models into halves could be measured: each half must itself
    hold every class in some subset and out of another, which needs roughly twice the models the
    plan check asks for (two independent halves that would each pass it)."""
    empty = [key for key, curves in out.reliability.items() if all(c.models_per_half.size == 0 for c in curves.values())]
    if not empty:
        return
    blocks = results.blocks
    groups = results.num_models if blocks is None else int(np.unique(blocks).size)
    what = "models" if blocks is None else "design blocks"
    out.notes.append(
        f"split-half reliability skipped: no split of the {results.num_models} models ({groups} {what}) into halves "
        "holds every class both in and out of some subset in each half; train about twice the models the plan "
        "check asks for"
    )
