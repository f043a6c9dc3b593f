"""Verifying explained mistakes by retraining (paper §4.2 Figure 6 right, Appendix E.4).

``explain`` names the source class that lowers a target image's output most; only retraining says
whether the class really causes the mistake. Here the full source and the full source minus that
class are each retrained with the same R seeds, and the labels every retrained model predicts for
the image are counted: if the class misleads the model, removing it moves the predictions towards
the true label (Figure 6, right).

The summary (Appendix E.4) asks how often that happens. Each target image is paired with its most
negative source class; the ``pairs`` images with the most negative such influence are the top pairs.
The ``classes`` classes that appear most often among them are retrained away, and every top pair of
one of those classes is scored: is the image predicted correctly by more, fewer or as many of the R
seeds once the class is gone? The same is asked of each such class's ``per_class`` most negatively
influenced images.

Every retrain is a run of the sweep store ``STUDY/verify/`` (see ``execute.sweep``), named by the
class it removes and its seed as in the counterfactual sweep, so a target and the summary that
remove the same class share their runs, and a second call trains only what is missing. The store is
its own because it needs the predicted labels that run files record only since they were added (a
counterfactual sweep may predate them). Every retrain transfers to every target of the study, so the
store serves them all; a target's verifications go to its folder (``context.folder("verify")``:
``STUDY/verify/`` for the primary target, ``STUDY/verify/target-<name>/`` for an extra one).
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import InputError, StudyMismatchError
from ..estimate import estimate
from ..execute import RunSummary, run_sweep
from ..study.atomic import atomic_write_text
from ..study.design import RunSpec
from ..study.store import DATA_FILE, StudyStore
from .context import StudyContext
from .counterfactual import DEFAULT_REPEATS, retrain_seeds, retrain_spec, sweep_config
from .debugging import explain_targets, find_target
from .projection import find_source_class
from .rankings import example_influence

VERIFY_DIR = "verify"
SUMMARY_STEM = "summary"
DEFAULT_PAIRS = 30
"""Top (class, image) pairs of the summary, the paper's 30."""
DEFAULT_CLASSES = 10
"""Classes retrained away in the summary (the paper used 14 on a 1,000-class source)."""
DEFAULT_PER_CLASS = 8
"""Most negatively influenced images per retrained class in the summary's second statistic (the paper's 8)."""
CHANGES = ("better", "worse", "same")
"""An image predicted correctly by more / fewer / as many seeds without the class as with it."""
TARGET_COLUMNS = ("label", "is_true_label", "count_with", "share_with", "count_without", "share_without")
SUMMARY_COLUMNS = (
    "statistic", "source_class", "target_id", "true_label", "influence", "correct_with", "correct_without", "change",
)
STATISTICS = ("top_pairs", "class_top_images")
"""The summary's two statistics: the top pairs whose class was retrained away, and each such class's
most negatively influenced images."""


# ---- shared checks and retrains ---------------------------------------------------------------
def _checked_seeds(context: StudyContext, repeats: int) -> list[int]:
    """The R retrain seeds, once the kind of study, the seed count and the finished runs are checked
    (before any training): ``verify`` removes whole source classes and compares R ≥ 2 seeds."""
    context.require_units("class", "verify")
    if repeats < 2:
        raise InputError(f"--repeats {repeats}: comparing predictions with and without a class needs at least 2 seeds "
                         f"(the paper uses {2 * DEFAULT_REPEATS})")
    if len(context.results.class_names) < 2:
        raise InputError(f"{context.path} has one source class; removing it would leave nothing to train on")
    return retrain_seeds(context.config.seed, repeats)


def _specs(removed: tuple[int, ...], num_classes: int, seeds: Sequence[int]) -> list[RunSpec]:
    """The counterfactual sweep's retrains of the full source minus ``removed`` (same names and seeds)."""
    return [retrain_spec(removed, num_classes, r, seed) for r, seed in enumerate(seeds)]


def _predictions(store: StudyStore, specs: Sequence[RunSpec], target: str | None = None) -> np.ndarray:
    """(seeds × target images) labels the retrains predict, read from their files; a file whose mask
    is not its name's, or that lacks predicted labels, is refused rather than counted."""
    rows = []
    for spec in specs:
        mask, _ = store.read_run_mask_and_record(spec.run_id)
        predicted = store.read_run_predicted(spec.run_id, target)
        if not np.array_equal(mask, spec.mask) or predicted is None:
            problem = "holds another class mask than its name says" if predicted is not None else "has no predicted labels"
            raise StudyMismatchError(
                f"{store.run_path(spec.run_id)} {problem}; delete the file and run `transfer-influence verify` again "
                "to retrain it"
            )
        rows.append(predicted.astype(np.int64))
    return np.stack(rows)


@dataclass
class _Retrained:
    full: np.ndarray
    """(seeds × target images) predicted labels of the full source."""
    without: dict[int, np.ndarray]
    """Per removed class: (seeds × target images) predicted labels without it."""
    store: StudyStore
    executed: list[RunSummary]


def _retrain(context: StudyContext, seeds: Sequence[int], removed: Sequence[int]) -> _Retrained:
    """Retrain the full source and the full source minus each class in ``removed`` (one at a time)
    with every seed, as ``context.retrain`` says, skipping the runs already stored in the study's
    verify store (``STUDY/verify/``, shared by its targets), and read the labels they predict on the
    context's target."""
    num_classes = len(context.results.class_names)
    full = _specs((), num_classes, seeds)
    minus = {c: _specs((c,), num_classes, seeds) for c in removed}
    specs = full + [spec for group in minus.values() for spec in group]
    retrain = context.retrain
    report = run_sweep(
        context.store, context.path / VERIFY_DIR, specs, sweep_config(context.config, retrain), retrain.progress,
        retrain.stream, label="retrains",
    )
    return _Retrained(
        full=_predictions(report.store, full, context.target),
        without={c: _predictions(report.store, group, context.target) for c, group in minus.items()},
        store=report.store,
        executed=report.executed,
    )


def _correct_counts(predicted: np.ndarray, columns: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per column: how many seeds predict its true label."""
    return (predicted[:, columns] == labels[columns]).sum(axis=0)


def change_of(correct_with: int, correct_without: int) -> str:
    """``better`` when more seeds get the image right without the class, ``worse`` when fewer."""
    if correct_without > correct_with:
        return "better"
    return "worse" if correct_without < correct_with else "same"


# ---- one target image (Figure 6, right) -------------------------------------------------------
@dataclass
class TargetVerification:
    """The labels the full source's retrains predict for one image, with and without one class."""

    sweep_dir: Path
    target_id: str
    index: int
    """Column of the image in the study's target test set (and in ``data.npz``)."""
    true_label: int
    target_class_names: tuple[str, ...]
    removed: str
    removed_index: int
    influence: float
    """The removed class's influence on the image (the study's estimate)."""
    chosen: bool
    """True when the class was chosen as the image's most negative one, False when named."""
    output_kind: str
    estimator: str
    num_models: int
    seeds: list[int]
    predicted_with: np.ndarray
    """Label predicted by each seed's full-source model."""
    predicted_without: np.ndarray
    """Label predicted by each seed's model without the removed class."""
    image: np.ndarray
    """The image as stored (channels, height, width), uint8."""
    executed: list[RunSummary] = field(default_factory=list)

    @property
    def repeats(self) -> int:
        return int(self.predicted_with.size)

    @property
    def true_label_name(self) -> str:
        return self.target_class_names[self.true_label]

    @property
    def counts_with(self) -> np.ndarray:
        """Per target label: how many seeds predict it with the class in the source."""
        return np.bincount(self.predicted_with, minlength=len(self.target_class_names))

    @property
    def counts_without(self) -> np.ndarray:
        return np.bincount(self.predicted_without, minlength=len(self.target_class_names))

    @property
    def correct_with(self) -> float:
        """Share of seeds that predict the true label with the class."""
        return float(np.mean(self.predicted_with == self.true_label))

    @property
    def correct_without(self) -> float:
        return float(np.mean(self.predicted_without == self.true_label))

    @property
    def change(self) -> str:
        return change_of(int(self.counts_with[self.true_label]), int(self.counts_without[self.true_label]))

    def rows(self) -> list[dict[str, object]]:
        """One row per target label (Figure 6 right's bars)."""
        with_counts, without_counts = self.counts_with, self.counts_without
        return [
            {
                "label": name,
                "is_true_label": label == self.true_label,
                "count_with": int(with_counts[label]),
                "share_with": float(with_counts[label] / self.repeats),
                "count_without": int(without_counts[label]),
                "share_without": float(without_counts[label] / self.repeats),
            }
            for label, name in enumerate(self.target_class_names)
        ]


def _column_influence(context: StudyContext, column: int, class_index: int) -> float:
    results = context.results
    outputs = np.asarray(results.outputs(context.kind))[:, [column]]
    influence = estimate(context.estimator, results.masks, outputs, results.class_names, None, context.kind, results.blocks)
    return float(influence.values[class_index, 0])


def _target_image(store: StudyStore, column: int, target: str | None = None) -> np.ndarray:
    test = "target_test" if target is None else f"target_test__{target}"
    with np.load(store.path / DATA_FILE, allow_pickle=False) as archive:
        return np.asarray(archive[f"{test}__images"][column])


def verify_target(
    context: StudyContext, target_id: str, remove: str | None = None, repeats: int = DEFAULT_REPEATS
) -> TargetVerification:
    """Retrain R seeds of the full source with and without ``remove`` (default: the image's most
    negative source class by the context's output kind and estimator) and count the labels they
    predict for the image ``target_id`` of the context's target.

    The kind of study, the image, the class and the seeds are checked before any training."""
    seeds = _checked_seeds(context, repeats)
    results = context.results
    column = find_target(results, target_id)
    if remove is not None:
        class_index = find_source_class(results.class_names, remove)
        influence = _column_influence(context, column, class_index)
    else:
        [explanation] = explain_targets(results, [column], context.kind, context.estimator, top=1)
        if not explanation.suspects:
            raise InputError(
                f"no source class lowers the {context.kind} of target {target_id!r} (every influence is ≥ 0); "
                "name the class to remove with --remove"
            )
        suspect = explanation.suspects[0]
        class_index, influence = suspect.index, suspect.influence
    retrained = _retrain(context, seeds, [class_index])
    return TargetVerification(
        sweep_dir=context.folder(VERIFY_DIR),
        target_id=target_id,
        index=column,
        true_label=int(results.target_labels[column]),
        target_class_names=tuple(results.target_class_names),
        removed=results.class_names[class_index],
        removed_index=class_index,
        influence=influence,
        chosen=remove is None,
        output_kind=context.kind,
        estimator=context.estimator,
        num_models=results.num_models,
        seeds=seeds,
        predicted_with=retrained.full[:, column],
        predicted_without=retrained.without[class_index][:, column],
        image=_target_image(context.store, column, context.target),
        executed=retrained.executed,
    )


# ---- the quantitative analysis (Appendix E.4) -------------------------------------------------
@dataclass(frozen=True)
class Pair:
    """A source class and a target image it influences negatively, with how many of the R seeds
    predict the image correctly with and without the class."""

    statistic: str
    source_class: str
    class_index: int
    target_id: str
    index: int
    true_label: str
    influence: float
    correct_with: int
    correct_without: int

    @property
    def change(self) -> str:
        return change_of(self.correct_with, self.correct_without)

    def row(self) -> dict[str, object]:
        return {
            "statistic": self.statistic, "source_class": self.source_class, "target_id": self.target_id,
            "true_label": self.true_label, "influence": self.influence, "correct_with": self.correct_with,
            "correct_without": self.correct_without, "change": self.change,
        }


@dataclass(frozen=True)
class Shares:
    """Shares of pairs whose image is predicted correctly more often / less often / equally often
    once the class is removed."""

    count: int
    better: float
    worse: float
    same: float

    @classmethod
    def of(cls, pairs: Sequence[Pair]) -> "Shares":
        changes = [p.change for p in pairs]
        count = len(changes)

        def share(change: str) -> float:
            return changes.count(change) / count if count else float("nan")

        return cls(count, share("better"), share("worse"), share("same"))


@dataclass
class VerificationSummary:
    sweep_dir: Path
    output_kind: str
    estimator: str
    num_models: int
    seeds: list[int]
    top_pairs: list[tuple[int, int, float]]
    """(class, image column, influence) of the most negatively influenced pairs, most negative first:
    each image with its most negative source class."""
    classes: tuple[str, ...]
    """The classes retrained away: those appearing most often among the top pairs."""
    pairs: list[Pair]
    """The top pairs whose class is among ``classes``."""
    class_images: list[Pair]
    """For each of ``classes``, its most negatively influenced images."""
    per_class: int
    executed: list[RunSummary] = field(default_factory=list)

    @property
    def pair_shares(self) -> Shares:
        return Shares.of(self.pairs)

    @property
    def class_image_shares(self) -> Shares:
        return Shares.of(self.class_images)

    def rows(self) -> list[dict[str, object]]:
        return [p.row() for p in self.pairs + self.class_images]


def _check_summary_request(pairs: int, classes: int, per_class: int) -> None:
    for flag, value in (("--pairs", pairs), ("--classes", classes), ("per_class", per_class)):
        if value < 1:
            raise InputError(f"{flag} must be at least 1 (got {value})")


def top_negative_pairs(values: np.ndarray, count: int) -> list[tuple[int, int, float]]:
    """Each target image paired with its most negative source class; the ``count`` pairs with the
    most negative influence, most negative first (images no class lowers are left out)."""
    worst_class = np.argmin(values, axis=0)
    worst = values[worst_class, np.arange(values.shape[1])]
    order = [int(j) for j in np.argsort(worst, kind="stable") if worst[j] < 0][:count]
    return [(int(worst_class[j]), j, float(worst[j])) for j in order]


def most_frequent_classes(top_pairs: Sequence[tuple[int, int, float]], count: int) -> list[int]:
    """The ``count`` classes that appear in most top pairs; ties go to the class whose first pair
    is more negative."""
    first_seen: dict[int, int] = {}
    frequency: dict[int, int] = {}
    for position, (c, _, _) in enumerate(top_pairs):
        first_seen.setdefault(c, position)
        frequency[c] = frequency.get(c, 0) + 1
    return sorted(frequency, key=lambda c: (-frequency[c], first_seen[c]))[:count]


def most_negative_images(values: np.ndarray, class_index: int, count: int) -> list[int]:
    """The ``count`` target images ``class_index`` influences most negatively (negative ones only)."""
    row = values[class_index]
    return [int(j) for j in np.argsort(row, kind="stable")[:count] if row[j] < 0]


def verify_summary(
    context: StudyContext,
    pairs: int = DEFAULT_PAIRS,
    classes: int = DEFAULT_CLASSES,
    repeats: int = DEFAULT_REPEATS,
    per_class: int = DEFAULT_PER_CLASS,
) -> VerificationSummary:
    """Appendix E.4 on the context's target: retrain without each of the ``classes`` classes most
    frequent among the ``pairs`` most negatively influenced (class, image) pairs, and count, per
    pair, whether the image is predicted correctly by more or fewer of the R seeds without its class."""
    _check_summary_request(pairs, classes, per_class)
    seeds = _checked_seeds(context, repeats)
    results = context.results
    values = example_influence(results, context.kind, context.estimator).values
    top = top_negative_pairs(values, pairs)
    if not top:
        raise InputError(f"no source class lowers the {context.kind} of any target image; there is no mistake to verify")
    chosen = most_frequent_classes(top, classes)
    retrained = _retrain(context, seeds, chosen)
    labels = results.target_labels.astype(np.int64)

    def pair(statistic: str, c: int, j: int) -> Pair:
        return Pair(
            statistic=statistic,
            source_class=results.class_names[c],
            class_index=c,
            target_id=str(results.target_ids[j]),
            index=j,
            true_label=results.target_class_names[int(labels[j])],
            influence=float(values[c, j]),
            correct_with=int(_correct_counts(retrained.full, np.array([j]), labels)[0]),
            correct_without=int(_correct_counts(retrained.without[c], np.array([j]), labels)[0]),
        )

    kept = [pair(STATISTICS[0], c, j) for c, j, _ in top if c in chosen]
    class_images = [pair(STATISTICS[1], c, j) for c in chosen for j in most_negative_images(values, c, per_class)]
    return VerificationSummary(
        sweep_dir=context.folder(VERIFY_DIR),
        output_kind=context.kind,
        estimator=context.estimator,
        num_models=results.num_models,
        seeds=seeds,
        top_pairs=top,
        classes=tuple(results.class_names[c] for c in chosen),
        pairs=kept,
        class_images=class_images,
        per_class=per_class,
        executed=retrained.executed,
    )


# ---- files ------------------------------------------------------------------------------------
def target_file_stem(target_id: str) -> str:
    """``target-<id>`` with the id made safe for a file name ('test/7' → 'target-test_7')."""
    return "target-" + (re.sub(r"[^A-Za-z0-9._-]+", "_", target_id).strip("_") or "unnamed")


def _csv(columns: Sequence[str], rows: Sequence[dict[str, object]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def target_json(result: TargetVerification) -> str:
    return json.dumps(
        {
            "target_id": result.target_id,
            "index": result.index,
            "true_label": result.true_label_name,
            "removed": result.removed,
            "removed_chosen_as": "most negative influence" if result.chosen else "named with --remove",
            "influence": result.influence,
            "output_kind": result.output_kind,
            "estimator": result.estimator,
            "models": result.num_models,
            "seeds": result.seeds,
            "predicted_with": [result.target_class_names[p] for p in result.predicted_with],
            "predicted_without": [result.target_class_names[p] for p in result.predicted_without],
            "correct_with": result.correct_with,
            "correct_without": result.correct_without,
            "change": result.change,
        },
        indent=2,
    )


def write_target(result: TargetVerification) -> dict[str, Path]:
    """``target-<id>.csv`` (one row per label) and ``target-<id>.json`` in the verify directory."""
    stem = result.sweep_dir / target_file_stem(result.target_id)
    files = {
        "table": (stem.with_suffix(".csv"), _csv(TARGET_COLUMNS, result.rows())),
        "details": (stem.with_suffix(".json"), target_json(result)),
    }
    Path(files["table"][0]).parent.mkdir(parents=True, exist_ok=True)
    for path, text in files.values():
        atomic_write_text(path, text)
    return {key: path for key, (path, _) in files.items()}


def _shares_json(shares: Shares) -> dict[str, object]:
    return {"count": shares.count, "better": shares.better, "worse": shares.worse, "same": shares.same}


def summary_json(summary: VerificationSummary) -> str:
    return json.dumps(
        {
            "output_kind": summary.output_kind,
            "estimator": summary.estimator,
            "models": summary.num_models,
            "seeds": summary.seeds,
            "classes": list(summary.classes),
            "top_pairs": {
                "requested": len(summary.top_pairs),
                "kept": len(summary.pairs),
                "shares": _shares_json(summary.pair_shares),
            },
            "class_top_images": {"per_class": summary.per_class, "shares": _shares_json(summary.class_image_shares)},
        },
        indent=2,
    )


def write_summary(summary: VerificationSummary) -> dict[str, Path]:
    """``summary.csv`` (one row per scored pair) and ``summary.json`` (the shares) in the verify directory."""
    files = {
        "table": (summary.sweep_dir / f"{SUMMARY_STEM}.csv", _csv(SUMMARY_COLUMNS, summary.rows())),
        "details": (summary.sweep_dir / f"{SUMMARY_STEM}.json", summary_json(summary)),
    }
    Path(files["table"][0]).parent.mkdir(parents=True, exist_ok=True)
    for path, text in files.values():
        atomic_write_text(path, text)
    return {key: path for key, (path, _) in files.items()}


# ---- reading the files back (the report) -------------------------------------------------------
@dataclass(frozen=True)
class StoredTarget:
    """A target verification as written to ``target-<id>.json`` and its figure, for the report."""

    details: dict[str, object]
    figure: Path | None


@dataclass(frozen=True)
class StoredSummary:
    details: dict[str, object]


def read_verifications(context: StudyContext) -> tuple[list[StoredTarget], StoredSummary | None]:
    """The verifications written for the context's target (in ``context.folder("verify")``; targets in
    file-name order), nothing retrained."""
    folder = context.folder(VERIFY_DIR)
    if not folder.is_dir():
        return [], None
    targets = []
    for path in sorted(folder.glob("target-*.json")):
        figure = path.with_suffix(".png")
        targets.append(StoredTarget(json.loads(path.read_text()), figure if figure.is_file() else None))
    summary_path = folder / f"{SUMMARY_STEM}.json"
    summary = StoredSummary(json.loads(summary_path.read_text())) if summary_path.is_file() else None
    return targets, summary
