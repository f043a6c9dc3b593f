"""How well leak detection finds faults planted on purpose (``source.plant``), against the number of models.

A planted leak copies one target test image; it is *found* when it is among the ``k`` most positive
source examples of that image's own datamodel (the issue's goal: 90% of leaks in the top 10). A
planted mislabel hurts no single image in particular, so it is scored over the whole target set:
source examples are ordered by their most negative coefficient on any target (the way ``leaks``
ranks negative pairs), and the share of planted mislabels among the first ``n`` flagged (``n`` = the
number planted) is compared with their share of the source (*enrichment*: 1 is what random
flagging gives). The same is reported for the examples' summed coefficient over all targets (their
overall effect, the score a removal acts on). Pure numpy on coefficients; the study is read only
by the functions that take a ``StudyContext`` (``study_leak_findings``, ``study_planted_curve``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..data.planted import PlantedFaults, read_planted
from ..errors import InputError
from .context import StudyContext
from .leaks import (
    PER_TARGET,
    LeakRanking,
    check_leak_estimator,
    check_per_target,
    example_coefficients,
    study_coefficients,
    study_leaks,
    worst_pair_score,
)

DEFAULT_TOP_K = 10
CURVE_START = 100
"""Smallest model count on the default curve (fewer models than source examples give mostly noise)."""


@dataclass(frozen=True)
class PlantedScore:
    """Detection of the planted faults by one estimator fitted on the first ``num_models`` models."""

    num_models: int
    estimator: str
    top_k: int
    leak_ranks: np.ndarray
    """For each planted leak (in source order), its rank among its own target's source examples,
    1 = most positive."""
    leak_styles: tuple[str, ...]
    mislabel_hits_min: int
    """Planted mislabels among the ``num_mislabels`` examples with the most negative coefficient on any target."""
    mislabel_hits_sum: int
    """The same by the summed coefficient over all targets."""
    num_mislabels: int
    num_sources: int

    def leak_recall(self, style: str | None = None) -> float:
        """Share of planted leaks (of one style, or all) in the top ``top_k`` of their own target."""
        chosen = self.leak_ranks if style is None else self.leak_ranks[np.array(self.leak_styles) == style]
        return float(np.mean(chosen <= self.top_k)) if chosen.size else float("nan")

    def enrichment(self, hits: int) -> float:
        """Precision among the ``num_mislabels`` flagged over the mislabels' share of the source."""
        if self.num_mislabels == 0:
            return float("nan")
        precision = hits / self.num_mislabels
        return precision / (self.num_mislabels / self.num_sources)

    def row(self) -> dict[str, object]:
        return {
            "models": self.num_models,
            "estimator": self.estimator,
            "leaks": int(self.leak_ranks.size),
            f"leak_recall_top{self.top_k}": self.leak_recall(),
            f"exact_recall_top{self.top_k}": self.leak_recall("exact"),
            f"augmented_recall_top{self.top_k}": self.leak_recall("augmented"),
            "leak_median_rank": float(np.median(self.leak_ranks)) if self.leak_ranks.size else float("nan"),
            "mislabels": self.num_mislabels,
            "mislabel_precision_min": self.mislabel_hits_min / self.num_mislabels if self.num_mislabels else float("nan"),
            "mislabel_enrichment_min": self.enrichment(self.mislabel_hits_min),
            "mislabel_precision_sum": self.mislabel_hits_sum / self.num_mislabels if self.num_mislabels else float("nan"),
            "mislabel_enrichment_sum": self.enrichment(self.mislabel_hits_sum),
        }


def leak_columns(planted: PlantedFaults, target_ids: Sequence[str]) -> np.ndarray:
    """Column of the target image each planted leak copies; refuses leaks of images not in the study."""
    position = {str(t): j for j, t in enumerate(target_ids)}
    missing = [t for t in planted.leak_targets if t not in position]
    if missing:
        raise InputError(
            f"{len(missing)} planted leaks copy target images this study does not test (first: {missing[0]}); "
            "leaks are planted from the primary target's test set: score the primary target"
        )
    return np.array([position[t] for t in planted.leak_targets], dtype=np.int64)


def score_planted(
    coefficients: np.ndarray, planted: PlantedFaults, columns: np.ndarray, num_models: int, estimator: str, top_k: int = DEFAULT_TOP_K
) -> PlantedScore:
    """Score one L × n coefficient matrix against the planted ground truth (``columns``: see
    :func:`leak_columns`). Ties in a target's column count against the leak (it ranks behind every
    example with an equal or larger coefficient), so an all-zero LASSO column finds nothing."""
    coefficients = np.asarray(coefficients, dtype=np.float64)
    num_sources = coefficients.shape[0]
    ranks = np.array(
        [int(np.sum(coefficients[:, j] >= coefficients[row, j])) for row, j in zip(planted.leak_rows, columns)],
        dtype=np.int64,
    )
    count = planted.mislabel_rows.size
    return PlantedScore(
        num_models=num_models,
        estimator=estimator,
        top_k=top_k,
        leak_ranks=ranks,
        leak_styles=planted.leak_styles,
        mislabel_hits_min=_hits(worst_pair_score(coefficients), planted.mislabel_rows, count),
        mislabel_hits_sum=_hits(coefficients.sum(axis=1), planted.mislabel_rows, count),
        num_mislabels=count,
        num_sources=num_sources,
    )


def _hits(score: np.ndarray, rows: np.ndarray, count: int) -> int:
    """How many of ``rows`` are among the ``count`` lowest scores. Ties count against the planted
    rows, as for leaks: a row ranks behind every example with an equal or lower score, so an
    all-zero LASSO score flags nothing whatever the row order."""
    ranks = np.array([int(np.sum(score <= score[row])) for row in rows], dtype=np.int64)
    return int(np.sum(ranks <= count))


def default_model_counts(num_models: int) -> list[int]:
    """Doubling from ``CURVE_START`` up to all the study's models."""
    counts: list[int] = []
    m = CURVE_START
    while m < num_models:
        counts.append(m)
        m *= 2
    return counts + [num_models]


def check_model_counts(counts: Sequence[int], available: int) -> list[int]:
    bad = [m for m in counts if not 3 <= m <= available]
    if bad:
        raise InputError(f"--models {','.join(map(str, bad))}: each count must be between 3 and the {available} finished models")
    return sorted(set(int(m) for m in counts))


@dataclass(frozen=True)
class CurveRequest:
    """The model counts and estimators of a detection curve (``leaks --curve``), checked against the
    study before any fit."""

    model_counts: tuple[int, ...]
    estimators: tuple[str, ...]


def _planted_faults(context: StudyContext, why: str) -> PlantedFaults:
    """The study's planted faults, or an ``InputError`` (``why``: what needs them) when it has none."""
    planted = read_planted(context.results.unit_names)
    if planted.empty:
        raise InputError(why)
    return planted


def curve_request(
    context: StudyContext, model_counts: Sequence[int] | None = None, estimators: Sequence[str] | None = None
) -> CurveRequest:
    """``leaks --curve`` checked before any fitting: the study must have planted faults, each count
    lie between 3 and its finished models (default: doubling from ``CURVE_START``), each estimator be
    a leak estimator (default: the context's)."""
    context.require_units("example", "leaks")
    _planted_faults(context, (
        f"--curve scores detection of planted faults, and {context.path} has none (no source.plant in its config); "
        "run a study with planted faults, such as configs/leaks.yaml"
    ))
    available = context.results.num_models
    counts = check_model_counts(model_counts, available) if model_counts else default_model_counts(available)
    names = tuple(dict.fromkeys(check_leak_estimator(e.strip()) for e in (estimators or (context.estimator,))))
    return CurveRequest(tuple(counts), names)


def study_planted_curve(
    context: StudyContext,
    request: CurveRequest | None = None,
    top_k: int = DEFAULT_TOP_K,
    on_step: Callable[[PlantedScore], None] | None = None,
    fitted: dict[tuple[int, str], np.ndarray] | None = None,
) -> list[PlantedScore]:
    """Detection of the study's planted faults by each estimator on its first m models, for each m
    (models in run order, so a curve reads as "what a study this size would have found"); ``request``
    None: the default counts with the context's estimator. ``fitted``: coefficients the caller
    already has, by (models, estimator), not fitted again."""
    context.require_units("example", "leaks")
    check_top_k(top_k)
    results = context.results
    planted = _planted_faults(context, (
        f"{results.path} has no planted faults (no source example id starts with planted-leak/ or "
        "planted-mislabel/); plant them with source.plant in the config, as configs/leaks.yaml does"
    ))
    request = request or curve_request(context)
    counts = check_model_counts(request.model_counts, results.num_models)
    names = [check_leak_estimator(name) for name in request.estimators]
    columns = leak_columns(planted, [str(t) for t in results.target_ids])
    outputs = np.asarray(results.outputs(context.kind), dtype=np.float64)
    blocks = results.blocks
    scores: list[PlantedScore] = []
    for m in counts:
        for name in names:
            coefficients = (fitted or {}).get((m, name))
            if coefficients is None:
                coefficients = example_coefficients(
                    results.masks[:m], outputs[:m], name, blocks=None if blocks is None else blocks[:m],
                    seed=context.config.seed,
                )
            score = score_planted(coefficients, planted, columns, m, name, top_k)
            scores.append(score)
            if on_step is not None:
                on_step(score)
    return scores


def check_top_k(top_k: int) -> int:
    """The rank a planted leak must reach to count as found (``--recall-k``): at least 1."""
    if top_k < 1:
        raise InputError(f"--recall-k must be at least 1 (got {top_k})")
    return top_k


@dataclass(frozen=True)
class LeakFindings:
    """One fit of an example study's datamodels and what is read from it: the coefficients (for a
    curve that reuses them), the ranked pairs, and the planted-fault score when the source has plants."""

    coefficients: np.ndarray
    ranking: LeakRanking
    planted: PlantedScore | None
    seconds: float
    """Time of the fit and the ranking."""


def study_leak_findings(
    context: StudyContext,
    per_target: int = PER_TARGET,
    top_k: int = DEFAULT_TOP_K,
) -> LeakFindings:
    """Fit, rank and score an example study once on the context's output kind and estimator, for
    ``leaks`` and the example report alike. Every input — the kind of study, the estimator, planted
    leaks of images the study does not test — is checked before the fit."""
    context.require_units("example", "leaks")
    check_leak_estimator(context.estimator)
    check_per_target(per_target)
    check_top_k(top_k)
    results = context.results
    planted = read_planted(results.unit_names)
    columns = None if planted.empty else leak_columns(planted, [str(t) for t in results.target_ids])
    seed = context.config.seed
    started = time.perf_counter()
    coefficients = study_coefficients(results, context.kind, context.estimator, seed)
    ranking = study_leaks(results, context.kind, context.estimator, per_target, seed, coefficients)
    seconds = time.perf_counter() - started
    score = None if columns is None else score_planted(coefficients, planted, columns, results.num_models, context.estimator, top_k)
    return LeakFindings(coefficients, ranking, score, seconds)
