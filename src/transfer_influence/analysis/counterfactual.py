"""Counterfactual removal (paper Figure 2, Table 2b): retrain on the full source without the classes
the influences single out, and compare target accuracy with the full source's.

Selection and scoring never share target images: the study's target test examples are split in two
halves (seeded, stratified by target class); classes are ranked by overall influence on the
*selection* half, and retrained models are scored by their accuracy on the *scoring* half. Scoring
on the images that chose the classes would reward the ranking for fitting their noise.

Arms: the full source; for each k, the k most positive (``top``), the k most negative (``bottom``)
and k random classes (``random``, a fresh draw per seed) removed; ``significant``: the classes
whose influence is negative under Benjamini–Hochberg at FDR 0.1; and ``whatif``: the most negative
classes, as many as the ranking study's what-if predictions (its linear datamodel, on the selection
half) say maximise accuracy — no arm when they predict no removal beats the full source. In an
example-level study the arms remove source examples, with two more: ``worst_pair``, the k examples
whose most negative influence on any single selection image is lowest (the per-image score of
``leaks``), and ``planted``, exactly the planted mislabels (a ground-truth reference, when the source
has them). Every arm is retrained with the same R seeds, so arms are compared *paired*: seed noise shared by two arms cancels from the
per-seed differences, whose standard error (sd / √R) sizes each arm's gain.

The recommendation is not the arm with the largest of these gains: that maximum over ~16 arms is
biased upwards by the choice (the winner's curse). The arms' R seeds are *selection* seeds: they
choose the candidate (the recommendable arm with the largest positive gain), which is then
retrained with the full source on R *confirmation* seeds of a stream of their own, and recommended
only if its paired gain there is positive one-sided at 5% (``evaluate.selection``,
``analysis.recommendation``). The per-arm ``beats_full_2se`` column stays what it is: each arm's own
unadjusted comparison, not a recommendation.

Every retrain is a run of a sweep store in ``STUDY/counterfactual/`` (see ``execute.sweep``), named
by the classes it removes and its seed: arms that remove the same set share runs, and a sweep that
is run again trains only what is missing. Every retrain transfers to every target of the study, so
that store is shared by the sweeps of all targets; a target's summaries go to its folder
(``StudyContext.folder``: ``STUDY/counterfactual/`` for the primary target,
``STUDY/counterfactual/target-<name>/`` for an extra one). A ranking taken from another study
(``ranking_from``) writes its summary to ``from-<that study's folder name>/`` inside that folder,
beside the study's own: the retrains (full source and random arms included) are shared.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..data.planted import read_planted
from ..errors import InputError, StudyMismatchError
from ..estimate import InfluenceEstimate, estimate
from ..evaluate.fdr import significant_classes
from ..evaluate.selection import MIN_SEEDS, choose_arm
from ..execute import RunSummary, run_sweep
from ..study.atomic import atomic_write_text
from ..study.config import StudyConfig
from ..study.design import RunSpec
from ..study.results import StudyResults, load_target_views
from ..study.store import StudyStore
from .context import RetrainOptions, StudyContext
from .leaks import example_coefficients, worst_pair_score
from .recommendation import (
    RECOMMENDATION_FILE, Recommendation, confirmed_recommendation, header_line, recommendation_json, unconfirmable,
)
from .target_split import split_scoring, split_targets
from .whatif import RemovalCurve, removal_curve

SWEEP_DIR = "counterfactual"
DEFAULT_KS = (5, 10, 15, 20, 30, 40, 50)
"""k values tried when none are given (those below the number of source classes)."""
DEFAULT_EXAMPLE_KS = (10, 20, 40, 80, 160)
"""k values tried in an example-level study (source examples removed) when none are given."""
DEFAULT_REPEATS = 10
"""Seeds per arm, the paper's R."""
MIN_REPEATS = MIN_SEEDS
"""Fewest seeds per arm: the confirmation's one-sided t(R − 1) test needs R ≥ 3 to have power
(``evaluate.selection.MIN_SEEDS`` says why)."""
CONFIRMATION_INDEX = 100_000
"""Run index of confirmation seed 0 (seed r is ``CONFIRMATION_INDEX + r``): apart from the
selection seeds' indices 0 … R − 1, so a run file says which stream trained it."""
SIGNIFICANCE_FDR = 0.1
SUMMARY_COLUMNS = ("selection", "k", "mean", "std", "n", "diff_vs_full", "diff_se", "beats_full_2se")
RECOMMENDABLE = ("top", "bottom", "significant", "whatif", "worst_pair")
"""Arms that name one source: ``random`` removes another set for every seed, so it is a control;
``planted`` (an example study with planted mislabels: exactly those removed) uses the ground truth,
so it is a reference for what removal could gain, never a recommendation."""

# Streams derived from the study seed, distinct from the design's, the target split's
# (target_split.SPLIT_STREAM) and each other.
_SEED_STREAM = 0xC0F2
_RANDOM_STREAM = 0xC0F3
_CONFIRM_STREAM = 0xC0F4




# ---- rankings ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Ranking:
    """Overall influence of each of *this* study's source classes (in its class order), with the
    classes significantly negative under Benjamini–Hochberg."""

    values: np.ndarray
    stderr: np.ndarray
    significant_negative: tuple[int, ...]
    source: str
    kind: str
    estimator: str
    num_models: int
    on_selection_half: bool
    whatif: RemovalCurve | None = None
    """Predicted accuracy of removing the 1, 2, … most negative classes (None: not available)."""
    whatif_note: str = ""
    """Why there is no what-if curve, when there is none."""


def selection_influence(
    results: StudyResults, columns: np.ndarray | None, kind: str, estimator: str
) -> InfluenceEstimate:
    """Influence on the mean output over the target examples in ``columns`` (all when None): as
    ``rankings.overall_influence``, restricted to the images that may choose classes."""
    outputs = np.asarray(results.outputs(kind), dtype=np.float64)
    chosen = outputs if columns is None else outputs[:, columns]
    mean = chosen.mean(axis=1, keepdims=True)
    label = "selection half" if columns is not None else "all targets"
    return estimate(estimator, results.masks, mean, results.class_names, (label,), kind, results.blocks)


def study_unit_names(store: StudyStore) -> tuple[str, ...]:
    """What a removal removes, in mask-column order: the source classes, or in an example-level
    study (``design.unit: example``) the source training examples by id."""
    if store.example_units:
        return tuple(load_target_views(store)["source_ids"].tolist())
    return tuple(store.metadata["class_names"])


def _class_order(ours: Sequence[str], theirs: Sequence[str], other: Path) -> np.ndarray:
    """Positions in ``theirs`` of each of ``ours``; refuses class sets that differ."""
    missing, extra = sorted(set(ours) - set(theirs)), sorted(set(theirs) - set(ours))
    if missing or extra or len(ours) != len(theirs):
        raise InputError(
            f"--ranking-from {other}: its source classes are not this study's "
            f"(missing there: {', '.join(missing[:10]) or 'none'}; not here: {', '.join(extra[:10]) or 'none'}); "
            "a ranking can only be applied to a study with the same source class names"
        )
    position = {name: i for i, name in enumerate(theirs)}
    return np.array([position[name] for name in ours], dtype=np.int64)


def _check_ranking_study(context: StudyContext, ranking: StudyContext) -> None:
    """Refuse, before the other study is read or consolidated, a ranking study whose units are of
    another kind (classes vs source examples) or have other names than this study's."""
    if ranking.unit_kind != context.unit_kind:
        kinds = {"example": "an example-level study (design.unit: example)", "class": "a class-level study"}
        raise InputError(
            f"--ranking-from {ranking.path} is {kinds[ranking.unit_kind]} and {context.path} is "
            f"{kinds[context.unit_kind]}: a ranking removes units of its own kind, so take it from a study of "
            "the same design.unit"
        )
    _class_order(study_unit_names(context.store), study_unit_names(ranking.store), ranking.path)


def _target_fingerprint(context: StudyContext) -> str | None:
    """The data fingerprint of the context's target test set (which images it scores)."""
    member = "target_test" if context.target is None else f"target_test__{context.target}"
    return context.store.metadata["fingerprints"].get(member)


def build_ranking(context: StudyContext, selection: np.ndarray, ranking_from: StudyContext | None = None) -> Ranking:
    """Rank this study's units from its own influences on the selection half of its target, or from
    another study's influences (``ranking_from``: that study's context, whose kind, estimator and
    target rank). The other study's target examples are used in full unless they are this study's
    own target test set, whose scoring half stays out of the ranking."""
    source = ranking_from or context
    ours = study_unit_names(context.store)
    if ranking_from is not None:
        _check_ranking_study(context, ranking_from)
    results = source.results
    order = _class_order(ours, results.class_names, source.path)
    same_targets = ranking_from is None or _target_fingerprint(ranking_from) == _target_fingerprint(context)
    columns = np.flatnonzero(selection) if same_targets else None
    influence = selection_influence(results, columns, source.kind, source.estimator)
    significant = {name for name, value, _ in significant_classes(influence, 0, SIGNIFICANCE_FDR) if value < 0}
    if results.unit_kind == "example":
        whatif, note = None, "what-if predictions are made for class removals only"
    else:
        whatif, note = _whatif_curve(source, influence.values[:, 0], columns)
    return Ranking(
        values=influence.values[order, 0],
        stderr=influence.stderr[order, 0],
        significant_negative=tuple(i for i, name in enumerate(ours) if name in significant),
        source=str(source.path),
        kind=source.kind,
        estimator=source.estimator,
        num_models=results.num_models,
        on_selection_half=same_targets,
        whatif=_in_our_order(whatif, results.class_names, ours) if whatif is not None else None,
        whatif_note=note,
    )


def _whatif_curve(source: StudyContext, values: np.ndarray, columns: np.ndarray | None) -> tuple[RemovalCurve | None, str]:
    """The ranking study's what-if curve for removing its most negative classes first, or why none."""
    if not any(r.startswith("all_source-") for r in source.store.finished_run_ids()):
        return None, f"{source.path} has no all-source baseline run, which anchors what-if predictions"
    return removal_curve(source.results, np.argsort(values, kind="stable"), columns), ""


def _in_our_order(curve: RemovalCurve, theirs: Sequence[str], ours: Sequence[str]) -> RemovalCurve:
    """The curve with its class order as positions in this study's class list."""
    position = {name: i for i, name in enumerate(ours)}
    order = tuple(position[theirs[c]] for c in curve.order)
    return RemovalCurve(order, curve.predicted, curve.predicted_stderr, curve.scaling)


# ---- arms and their retrains ------------------------------------------------------------------
@dataclass(frozen=True)
class Arm:
    """Which classes one arm removes, per seed (the same set for every seed except ``random``)."""

    selection: str
    k: int
    removed: tuple[tuple[int, ...], ...]


def retrain_seeds(study_seed: int, repeats: int) -> list[int]:
    """The R training seeds every arm uses (paired arms); seed r does not depend on R."""
    return [int(np.random.default_rng([_SEED_STREAM, study_seed, r]).integers(0, 2**31 - 1)) for r in range(repeats)]


def confirmation_seeds(study_seed: int, repeats: int) -> list[int]:
    """The R fresh seeds that confirm the chosen arm: a stream of their own, so no confirmation seed
    is a selection seed (the choice never saw them); seed r does not depend on R."""
    return [int(np.random.default_rng([_CONFIRM_STREAM, study_seed, r]).integers(0, 2**31 - 1)) for r in range(repeats)]


def plan_arms(ranking: Ranking, ks: Sequence[int], repeats: int, study_seed: int) -> list[Arm]:
    num_classes = ranking.values.size
    order = np.argsort(-ranking.values, kind="stable")  # most positive first
    arms = [Arm("full", 0, ((),) * repeats)]
    for k in ks:
        top = tuple(sorted(int(c) for c in order[:k]))
        bottom = tuple(sorted(int(c) for c in order[::-1][:k]))
        randoms = tuple(
            tuple(sorted(int(c) for c in np.random.default_rng([_RANDOM_STREAM, study_seed, k, r]).choice(num_classes, k, replace=False)))
            for r in range(repeats)
        )
        arms += [Arm("top", k, (top,) * repeats), Arm("bottom", k, (bottom,) * repeats), Arm("random", k, randoms)]
    significant = ranking.significant_negative
    if len(significant) < num_classes:  # removing every class leaves nothing to train on
        arms.append(Arm("significant", len(significant), (tuple(significant),) * repeats))
    if ranking.whatif is not None and ranking.whatif.best_k > 0:
        chosen = tuple(sorted(ranking.whatif.order[: ranking.whatif.best_k]))
        arms.append(Arm("whatif", len(chosen), (chosen,) * repeats))
    return arms


def worst_pair_scores(context: StudyContext, selection: np.ndarray, ranking: Ranking) -> np.ndarray:
    """Each source example's most negative influence on any single image of the selection half (the
    score ``leaks`` ranks negative pairs by), for an example study: a mislabelled example hurts the
    few images that look like it, which a sum over all images dilutes."""
    results = context.results
    outputs = np.asarray(results.outputs(ranking.kind), dtype=np.float64)[:, selection]
    return worst_pair_score(example_coefficients(results.masks, outputs, ranking.estimator, blocks=results.blocks))


def worst_pair_arms(scores: np.ndarray, ks: Sequence[int], repeats: int) -> list[Arm]:
    """For each k, the k source examples with the most negative worst-pair score removed."""
    order = np.argsort(scores, kind="stable")
    return [Arm("worst_pair", k, (tuple(sorted(int(u) for u in order[:k])),) * repeats) for k in ks]


def planted_arms(unit_names: Sequence[str], repeats: int, example_units: bool) -> list[Arm]:
    """In an example study whose source has planted mislabels (``source.plant``), an arm removing
    exactly them: what a perfect detector of the planted faults would gain."""
    if not example_units:
        return []
    rows = read_planted(tuple(unit_names)).mislabel_rows
    if rows.size == 0 or rows.size >= len(unit_names):
        return []
    removed = tuple(int(r) for r in rows)
    return [Arm("planted", len(removed), (removed,) * repeats)]


def retrain_spec(removed: tuple[int, ...], num_classes: int, repeat: int, seed: int, confirmation: bool = False) -> RunSpec:
    """The full source minus ``removed``, trained with ``seed``; its id names the removed set (by a
    digest), the seed stream (``r``: selection, ``c``: confirmation) and the repeat, so any arm
    removing the same classes finds the same file."""
    mask = np.ones(num_classes, dtype=bool)
    mask[list(removed)] = False
    digest = hashlib.sha256(np.packbits(~mask).tobytes() + num_classes.to_bytes(4, "little")).hexdigest()[:12]
    stream, index = ("c", CONFIRMATION_INDEX + repeat) if confirmation else ("r", repeat)
    return RunSpec("retrain", index, mask, seed, name=f"minus{len(removed):03d}-{digest}-{stream}{repeat:03d}")


def arm_specs(arm: Arm, num_classes: int, seeds: Sequence[int], confirmation: bool = False) -> list[RunSpec]:
    return [retrain_spec(removed, num_classes, r, seeds[r], confirmation) for r, removed in enumerate(arm.removed)]


# ---- scoring ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ArmResult:
    arm: Arm
    accuracy: np.ndarray
    """Accuracy on the scoring half, one value per seed (in seed order)."""
    differences: np.ndarray | None
    """Per-seed accuracy minus the full source's with the same seed (None for the full arm)."""

    @property
    def mean(self) -> float:
        return float(self.accuracy.mean())

    @property
    def std(self) -> float:
        return float(self.accuracy.std(ddof=1)) if self.accuracy.size > 1 else 0.0

    @property
    def diff_vs_full(self) -> float:
        return float(self.differences.mean()) if self.differences is not None else 0.0

    @property
    def diff_se(self) -> float:
        d = self.differences
        if d is None:
            return 0.0
        return float(d.std(ddof=1) / math.sqrt(d.size)) if d.size > 1 else float("nan")

    @property
    def beats_full(self) -> bool:
        """Whether this arm's paired gain over the full source exceeds two of its standard errors:
        the arm's own comparison, unadjusted for choosing it among the others and approximate at
        few seeds (2 SE is a t(R − 1) test only for large R), so never a recommendation."""
        return self.differences is not None and bool(self.diff_vs_full > 2 * self.diff_se)

    def row(self) -> dict[str, object]:
        full = self.differences is None
        return {
            "selection": self.arm.selection,
            "k": self.arm.k,
            "mean": self.mean,
            "std": self.std,
            "n": int(self.accuracy.size),
            "diff_vs_full": "" if full else self.diff_vs_full,
            "diff_se": "" if full else self.diff_se,
            "beats_full_2se": "" if full else self.beats_full,
        }


def scoring_accuracy(store: StudyStore, spec: RunSpec, scoring: np.ndarray, target: str | None = None) -> float:
    """Share of the scoring half a retrained model predicts correctly (from its ``correct`` output
    on the primary target, or on the extra target ``target``); a stored run whose mask is not the
    spec's is refused rather than scored."""
    mask, _ = store.read_run_mask_and_record(spec.run_id)
    if not np.array_equal(mask, spec.mask):
        raise StudyMismatchError(
            f"{store.run_path(spec.run_id)} holds another class mask than its name says; delete the file and run "
            "the counterfactual again to retrain it"
        )
    return float(store.read_run_output(spec.run_id, "correct", target)[scoring].mean())


@dataclass
class CounterfactualResult:
    sweep_dir: Path
    """Where this ranking's summary, removed sets and figure are written (the sweep directory for
    the study's own ranking, ``from-<name>/`` inside it for another study's)."""
    class_names: tuple[str, ...]
    ranking: Ranking
    arms: list[ArmResult]
    seeds: list[int]
    selection: np.ndarray
    """True for the target test examples that chose the classes; the others scored the retrains."""
    executed: list[RunSummary] = field(default_factory=list)
    from_other_study: bool = False
    """Whether the ranking came from another study (``ranking_from``)."""
    unit_kind: str = "class"
    """What the arms remove: source ``class``-es or, in an example-level study, source ``example``-s."""
    recommendation: Recommendation | None = None
    """The candidate chosen on the selection seeds and its confirmation on fresh seeds (None: not
    confirmed yet, e.g. a result assembled from stored arms)."""
    choice_arms: list[ArmResult] | None = None
    """The same selection-seed retrains scored on the choice images, where the candidate is chosen
    (None: chosen on ``arms``)."""
    choice_images: np.ndarray | None = None
    """True for the scoring images the candidate is chosen on; the others confirm it."""

    @property
    def full(self) -> ArmResult:
        return next(a for a in self.arms if a.arm.selection == "full")

    @property
    def candidate(self) -> ArmResult | None:
        """The arm the selection seeds choose (``choose_candidate``): a candidate, not a recommendation."""
        return choose_candidate(self.choice_arms if self.choice_arms is not None else self.arms)[0]

    @property
    def recommended(self) -> ArmResult | None:
        """The candidate when its gain was confirmed on fresh seeds; None otherwise (keep the full
        source), including when no confirmation has been run."""
        rec = self.recommendation
        if rec is None or not rec.confirmed:
            return None
        return next(a for a in self.arms if a.arm.selection == rec.selection and a.arm.k == rec.k)

    def rows(self) -> list[dict[str, object]]:
        return [a.row() for a in self.arms]


def _check_request(ks: Sequence[int], repeats: int, num_classes: int, units: str = "classes") -> None:
    if not ks:
        raise InputError("--k needs at least one value, e.g. --k 5,10,20")
    bad = [k for k in ks if not 1 <= k <= num_classes - 1]
    if bad:
        raise InputError(
            f"--k {','.join(map(str, bad))}: k must be between 1 and {num_classes - 1} "
            f"(the study has {num_classes} {units} to remove and a retrain must keep at least one)"
        )
    if repeats < MIN_REPEATS:
        raise InputError(
            f"--repeats {repeats}: the recommendation confirms the chosen removal on as many fresh seeds with a "
            f"one-sided t(R-1) test, which needs at least {MIN_REPEATS} seeds per arm (at 2 a real gain must exceed "
            f"6.3 standard errors); use --repeats {MIN_REPEATS} or more (the paper uses {DEFAULT_REPEATS})"
        )


def default_ks(num_classes: int, examples: bool = False) -> list[int]:
    fitting = [k for k in (DEFAULT_EXAMPLE_KS if examples else DEFAULT_KS) if k <= num_classes - 1]
    return fitting or [max(1, num_classes // 2)]


def run_counterfactual(
    context: StudyContext,
    ks: Sequence[int] | None = None,
    repeats: int = DEFAULT_REPEATS,
    ranking_from: StudyContext | None = None,
) -> CounterfactualResult:
    """Rank, retrain every arm R times (skipping retrains already stored) and score them on the
    context's target; retrains run as ``context.retrain`` says.

    Then the arm the R selection seeds choose is confirmed on R fresh seeds (``confirm_candidate``).
    Every input is checked before any training: k within 1 … K−1, at least ``MIN_REPEATS`` seeds, a
    ranking study (``ranking_from``: its context, whose output kind and estimator rank) with finished
    runs and this study's unit names and kind. The retrains transfer to every target of the study,
    so they are shared by the sweeps of all its targets; the summaries go to
    ``context.folder("counterfactual")``."""
    unit_names = study_unit_names(context.store)
    examples = context.unit_kind == "example"
    ks = sorted(set(ks)) if ks is not None else default_ks(len(unit_names), examples)
    _check_request(ks, repeats, len(unit_names), context.unit_word)
    seed = context.config.seed
    labels = load_target_views(context.store, context.target)["labels"]
    selection = split_targets(labels, seed)
    ranking = build_ranking(context, selection, ranking_from)
    seeds = retrain_seeds(seed, repeats)
    arms = plan_arms(ranking, ks, repeats, seed)
    if examples and ranking_from is None:
        arms += worst_pair_arms(worst_pair_scores(context, selection, ranking), ks, repeats)
    arms += planted_arms(unit_names, repeats, examples)
    sweep = retrain_arms(context, arms, seeds, ~selection)
    choice_images, confirmation_images = split_scoring(labels, selection, seed)
    on_choice_images = rescore_arms(context, sweep.store, sweep.arms, seeds, choice_images)
    recommendation, confirming = confirm_candidate(
        context, on_choice_images, confirmation_seeds(seed, repeats), confirmation_images
    )
    results_dir = context.folder(SWEEP_DIR)
    if ranking_from is not None:
        results_dir = results_dir / ranking_dir_name(ranking_from.path)
    return CounterfactualResult(
        results_dir, unit_names, ranking, sweep.arms, seeds, selection, sweep.executed + confirming,
        ranking_from is not None, context.unit_kind, recommendation, on_choice_images, choice_images,
    )


def choose_candidate(arms: Sequence[ArmResult]) -> tuple[ArmResult | None, list[ArmResult]]:
    """The recommendable arm with the largest positive mean gain on the selection seeds
    (``evaluate.selection.choose_arm``; None when no gain is positive), and the arms it was chosen
    among: the recommendable ones that remove something (a ``significant`` arm with no significant
    class is the full source again)."""
    pool = [a for a in arms if a.arm.selection in RECOMMENDABLE and a.arm.k > 0 and a.differences is not None]
    if not pool:
        return None, pool
    index = int(choose_arm(np.stack([a.differences for a in pool])))  # type: ignore[misc]
    return (pool[index] if index >= 0 else None), pool


def arm_label(arm: Arm) -> str:
    return f"{arm.selection}-{arm.k}"


def confirm_candidate(
    context: StudyContext, arms: Sequence[ArmResult], seeds: Sequence[int], scoring: np.ndarray
) -> tuple[Recommendation, list[RunSummary]]:
    """Retrain the candidate and the full source on the fresh ``seeds`` (stored in the sweep store
    as ``…-c<r>`` runs, so a rerun trains nothing again) and test the candidate's paired gain there.
    With no candidate nothing is retrained and the full source is recommended."""
    chosen, pool = choose_candidate(arms)
    if chosen is None:
        best = max(pool, key=lambda a: a.diff_vs_full, default=None)
        label = None if best is None else arm_label(best.arm)
        return unconfirmable(label, None if best is None else best.differences, len(pool), len(arms[0].accuracy)), []
    repeats = len(seeds)
    pair = [Arm("full", 0, ((),) * repeats), Arm(chosen.arm.selection, chosen.arm.k, (chosen.arm.removed[0],) * repeats)]
    sweep = retrain_arms(context, pair, seeds, scoring, confirmation=True)
    full, arm = sweep.arms
    recommendation = confirmed_recommendation(
        arm_label(chosen.arm), chosen.arm.selection, chosen.arm.k, chosen.arm.removed[0], chosen.differences,  # type: ignore[arg-type]
        len(pool), seeds, full.accuracy, arm.accuracy, per_image=_per_image_differences(context, sweep.store, pair, seeds, scoring),
    )
    return recommendation, sweep.executed


def _per_image_differences(
    context: StudyContext, store: StudyStore, pair: Sequence[Arm], seeds: Sequence[int], scoring: np.ndarray
) -> np.ndarray:
    """Seeds × confirmation images: the candidate's correctness minus the full source's, for the
    confirmation test's image part (``evaluate.selection.confirm_gain_over_seeds_and_images``)."""
    num_units = len(study_unit_names(context.store))
    full_specs, arm_specs_ = (arm_specs(arm, num_units, seeds, True) for arm in pair)

    def correct(spec: RunSpec) -> np.ndarray:
        return np.asarray(store.read_run_output(spec.run_id, "correct", context.target), dtype=np.float64)[scoring]

    return np.stack([correct(a) - correct(f) for f, a in zip(full_specs, arm_specs_)])


def ranking_dir_name(ranking_from: Path) -> str:
    """Folder (inside the sweep directory) of the summary of a ranking taken from another study."""
    name = ranking_from.resolve().name
    return "from-" + "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


def sweep_config(config: StudyConfig, retrain: RetrainOptions) -> StudyConfig:
    """The study's config with the retrains' own execution settings (executor, workers)."""
    changes: dict[str, object] = {}
    if retrain.serial:
        changes["execution.executor"] = "serial"
    if retrain.workers is not None:
        changes["execution.workers"] = retrain.workers
    return config.with_overrides(**changes) if changes else config


def retrain_store_dir(context: StudyContext) -> Path:
    """The sweep store of the study's counterfactual retrains: ``STUDY/counterfactual/``, the primary
    target's folder whatever the context's target, because every retrain transfers to every target
    and so serves the sweeps (and ``handpicked``) of all of them."""
    return context.path / SWEEP_DIR


@dataclass
class RetrainedArms:
    store: StudyStore
    arms: list[ArmResult]
    executed: list[RunSummary]


def retrain_arms(
    context: StudyContext,
    arms: Sequence[Arm],
    seeds: Sequence[int],
    scoring: np.ndarray,
    confirmation: bool = False,
) -> RetrainedArms:
    """Retrain every arm's runs missing from the sweep store (``retrain_store_dir``) as
    ``context.retrain`` says, and score each on the ``scoring`` examples of the context's target;
    ``arms[0]`` must be the full source, which every other arm is paired with seed by seed. Any
    caller with the same seeds shares the stored retrains. ``confirmation``: the seeds are
    confirmation seeds (runs named ``…-c<r>``, apart from the selection seeds' ``…-r<r>``)."""
    if not arms or arms[0].selection != "full":
        raise ValueError("the first arm must be the full source: the others are paired with it")
    num_units = len(study_unit_names(context.store))
    specs_of = [arm_specs(arm, num_units, seeds, confirmation) for arm in arms]
    all_specs = [spec for specs in specs_of for spec in specs]
    label = "confirmation retrains" if confirmation else "retrains"
    retrain = context.retrain
    report = run_sweep(
        context.store, retrain_store_dir(context), all_specs, sweep_config(context.config, retrain),
        retrain.progress, retrain.stream, label=label,
    )
    return RetrainedArms(report.store, _scored(report.store, arms, specs_of, scoring, context.target), report.executed)


def rescore_arms(
    context: StudyContext, store: StudyStore, arms: Sequence[ArmResult], seeds: Sequence[int], scoring: np.ndarray
) -> list[ArmResult]:
    """The same stored selection-seed retrains scored on other target images (``scoring``): the
    counterfactual chooses its candidate on the choice images (``target_split.split_scoring``)."""
    plain = [a.arm for a in arms]
    num_units = len(study_unit_names(context.store))
    specs_of = [arm_specs(arm, num_units, seeds, False) for arm in plain]
    return _scored(store, plain, specs_of, scoring, context.target)


def _scored(
    store: StudyStore, arms: Sequence[Arm], specs_of: Sequence[Sequence[RunSpec]], scoring: np.ndarray, target: str | None
) -> list[ArmResult]:
    """Each arm's per-seed accuracy on ``scoring``, paired with the full source's (``arms[0]``)."""
    accuracy = {spec.run_id: scoring_accuracy(store, spec, scoring, target) for specs in specs_of for spec in specs}
    full = np.array([accuracy[s.run_id] for s in specs_of[0]])
    results: list[ArmResult] = []
    for arm, specs in zip(arms, specs_of):
        values = np.array([accuracy[s.run_id] for s in specs])
        results.append(ArmResult(arm, values, None if arm.selection == "full" else values - full))
    return results


# ---- files ------------------------------------------------------------------------------------
def summary_csv(result: CounterfactualResult) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SUMMARY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(result.rows())
    return buffer.getvalue()


def removed_json(result: CounterfactualResult) -> str:
    names = result.class_names

    def named(classes: tuple[int, ...]) -> list[str]:
        return [names[c] for c in classes]

    arms = []
    for a in result.arms:
        entry: dict[str, object] = {"selection": a.arm.selection, "k": a.arm.k}
        if a.arm.selection == "random":
            entry["removed_per_seed"] = [named(r) for r in a.arm.removed]
        else:
            entry["removed"] = named(a.arm.removed[0])
        entry["accuracy_per_seed"] = [float(v) for v in a.accuracy]
        arms.append(entry)
    r = result.ranking
    return json.dumps(
        {
            "ranking": {
                "from": r.source, "output_kind": r.kind, "estimator": r.estimator, "models": r.num_models,
                "on_selection_half": r.on_selection_half, "significance_fdr": SIGNIFICANCE_FDR,
            },
            "whatif_rule": _whatif_entry(r),
            "target_split": {
                "selection_examples": int(result.selection.sum()), "scoring_examples": int((~result.selection).sum()),
                **_choice_split(result),
            },
            "seeds": result.seeds,
            "arms": arms,
        },
        indent=2,
    )


def _choice_split(result: CounterfactualResult) -> dict[str, int]:
    """How many scoring images chose the candidate and how many confirmed it (none when unknown)."""
    if result.choice_images is None:
        return {}
    confirming = ~result.selection & ~result.choice_images
    return {"choice_examples": int(result.choice_images.sum()), "confirmation_examples": int(confirming.sum())}


def _whatif_entry(ranking: Ranking) -> dict[str, object]:
    curve = ranking.whatif
    if curve is None:
        return {"available": False, "why": ranking.whatif_note}
    return {
        "available": True,
        "chosen_k": curve.best_k,
        "predicted_gain": curve.predicted_gain,
        "scaling": curve.scaling,
        "predicted_accuracy_by_k": [float(v) for v in curve.predicted],
        "predicted_stderr_by_k": [float(v) if math.isfinite(v) else None for v in curve.predicted_stderr],  # no interval: null, never NaN
    }


def _recommendation(result: CounterfactualResult) -> Recommendation:
    if result.recommendation is None:
        raise ValueError("the result has no recommendation: run_counterfactual confirms the candidate before writing")
    return result.recommendation


def recommended_source_text(result: CounterfactualResult) -> str:
    """The units to train on, after a one-line ``# …`` header saying what is recommended with the
    confirmed gain and its interval (the report shows that line)."""
    rec = _recommendation(result)
    kept_mask = np.ones(len(result.class_names), dtype=bool)
    if rec.confirmed:
        kept_mask[list(rec.removed)] = False
    kept = [name for name, keep in zip(result.class_names, kept_mask) if keep]
    return "\n".join([header_line(rec), *kept]) + "\n"


def write_counterfactual(result: CounterfactualResult) -> dict[str, Path]:
    """``summary.csv``, ``removed.json``, ``recommendation.json`` and ``recommended_source.txt`` in
    the sweep directory."""
    files = {
        "summary": (result.sweep_dir / "summary.csv", summary_csv(result)),
        "removed": (result.sweep_dir / "removed.json", removed_json(result)),
        "recommendation": (result.sweep_dir / RECOMMENDATION_FILE, recommendation_json(_recommendation(result), result.class_names)),
        "recommended": (result.sweep_dir / "recommended_source.txt", recommended_source_text(result)),
    }
    result.sweep_dir.mkdir(parents=True, exist_ok=True)
    for path, text in files.values():
        atomic_write_text(path, text)
    return {key: path for key, (path, _) in files.items()}
