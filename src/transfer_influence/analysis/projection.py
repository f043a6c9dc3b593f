"""Projecting source classes onto target images (paper §4.1, Figures 4–5).

A class's example-level influences say *which* target images it moves, not only how much it
moves a target class on average: the images it helps most show the feature the class lends the
target task, the images it hurts most show where that feature misleads. Read the other way, the
source class that helps each image of one target class most splits that class into finer
sub-populations (the paper's Figure 5). Everything here is numpy on an ``InfluenceEstimate`` whose
columns are target examples; images are read from the study's ``data.npz`` for the drawing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import InputError, unknown_name_error
from ..estimate import InfluenceEstimate
from ..study.store import DATA_FILE
from .context import StudyContext
from .rankings import example_influence

SEE_CLASSES = "`transfer-influence influence STUDY` (its tables name every class)"
"""Where an unknown-class error sends the reader for the names it does not list."""


@dataclass(frozen=True)
class ProjectedTarget:
    """One target test image and the influence a source class has on it."""

    target_id: str
    index: int
    """Column of the image in the study's target test set (and in ``data.npz``)."""
    true_label: str
    influence: float
    stderr: float


@dataclass(frozen=True)
class SourceProjection:
    """The target images one source class influences most positively and most negatively."""

    source_class: str
    class_index: int
    output_kind: str | None
    estimator: str
    num_models: int
    most_positive: tuple[ProjectedTarget, ...]
    most_negative: tuple[ProjectedTarget, ...]


@dataclass(frozen=True)
class SubPopulation:
    """The images of one target class on which ``source_class`` is the most positive influence."""

    source_class: str
    class_index: int
    members: tuple[ProjectedTarget, ...]
    """Sorted from the largest influence down."""


@dataclass(frozen=True)
class TargetClassProjection:
    """Which source classes project onto which images of one target class (Figure 5)."""

    target_class: str
    output_kind: str | None
    estimator: str
    num_models: int
    groups: tuple[SubPopulation, ...]
    """Largest group first; groups of equal size in class order."""
    unclaimed: tuple[ProjectedTarget, ...]
    """Images no source class influences positively (their largest influence is ≤ 0)."""


@dataclass(frozen=True)
class StudyImages:
    """The source training and target test images of a study, as stored in its ``data.npz``."""

    source_images: np.ndarray
    source_labels: np.ndarray
    source_classes: tuple[str, ...]
    target_images: np.ndarray
    target_ids: tuple[str, ...]

    def source_examples(self, class_index: int, count: int) -> np.ndarray:
        """``count`` training images of one source class, spread evenly over its examples."""
        members = np.flatnonzero(self.source_labels == class_index)
        if members.size == 0:
            return self.source_images[:0]
        picks = np.unique(np.linspace(0, members.size - 1, num=min(count, members.size)).round().astype(int))
        return self.source_images[members[picks]]


def load_study_images(context: StudyContext) -> StudyImages:
    """The source images and the test images of the context's target (the primary's test set, or
    an extra target's), as stored in the study's ``data.npz``."""
    test = "target_test" if context.target is None else f"target_test__{context.target}"
    with np.load(context.path / DATA_FILE, allow_pickle=False) as archive:
        return StudyImages(
            source_images=archive["source_train__images"],
            source_labels=archive["source_train__labels"].astype(np.int64),
            source_classes=tuple(str(c) for c in archive["source_train__classes"]),
            target_images=archive[f"{test}__images"],
            target_ids=tuple(str(i) for i in archive[f"{test}__ids"]),
        )


def check_top(top: int, most: int | None = None, what: str = "") -> int:
    """``top`` when it is at least 1 and, where ``most`` is given, at most ``most`` (``what`` names
    that bound, e.g. "the study's 150 target test images"): checked before any estimate, so that a
    number past the data is refused at once rather than computed and cut."""
    if top < 1:
        raise InputError(f"--top must be at least 1 (got {top})")
    if most is not None and top > most:
        raise InputError(f"--top {top} is more than {what}; give --top {most} or less")
    return top


def source_projection_limit(num_targets: int) -> int:
    """The most target images ``project --source-class`` can list at each end: half of them, so that
    no image is listed at both ends (at least one)."""
    return max(1, num_targets // 2)


def find_source_class(class_names: Sequence[str], name: str) -> int:
    """Row of a source class, or an ``InputError`` with the close names and where to see them all."""
    if name not in class_names:
        raise unknown_name_error("source class", name, class_names, "source classes", SEE_CLASSES)
    return list(class_names).index(name)


def find_target_class(target_class_names: Sequence[str], name: str) -> int:
    """Label of a target class, or an ``InputError`` with the close names."""
    if name not in target_class_names:
        raise unknown_name_error("target class", name, target_class_names, "target classes", SEE_CLASSES)
    return list(target_class_names).index(name)


def _projected(
    influence: InfluenceEstimate, row: int, columns: np.ndarray, target_labels: np.ndarray, target_class_names: Sequence[str]
) -> tuple[ProjectedTarget, ...]:
    return tuple(
        ProjectedTarget(
            target_id=influence.target_ids[j],
            index=int(j),
            true_label=target_class_names[int(target_labels[j])],
            influence=float(influence.values[row, j]),
            stderr=float(influence.stderr[row, j]),
        )
        for j in columns
    )


def project_source_class(
    influence: InfluenceEstimate,
    target_labels: np.ndarray,
    target_class_names: Sequence[str],
    source_class: str,
    top: int = 8,
) -> SourceProjection:
    """The ``top`` target images ``source_class`` influences most positively and most negatively.

    ``influence`` holds one column per target example (``analysis.rankings.example_influence``).
    Each end takes at most half the images so that no image is listed at both ends.
    """
    check_top(top)
    row = find_source_class(influence.unit_names, source_class)
    values = influence.values[row]
    count = min(top, source_projection_limit(values.size))
    highest = np.argsort(-values, kind="stable")[:count]
    lowest = np.argsort(values, kind="stable")[:count]
    return SourceProjection(
        source_class=source_class,
        class_index=row,
        output_kind=influence.output_kind,
        estimator=influence.estimator,
        num_models=influence.num_models,
        most_positive=_projected(influence, row, highest, target_labels, target_class_names),
        most_negative=_projected(influence, row, lowest, target_labels, target_class_names),
    )


def project_target_class(
    influence: InfluenceEstimate,
    target_labels: np.ndarray,
    target_class_names: Sequence[str],
    target_class: str,
) -> TargetClassProjection:
    """Group the images of ``target_class`` by the source class most positively influencing each.

    ``influence`` has one column per target example, in the study's order (``target_labels``
    labels those columns).
    """
    label = find_target_class(target_class_names, target_class)
    columns = np.flatnonzero(np.asarray(target_labels) == label)
    if columns.size == 0:
        raise InputError(f"target class {target_class!r} has no test images in this study")
    block = influence.values[:, columns]
    best = np.argmax(block, axis=0)
    claimed = block[best, np.arange(columns.size)] > 0
    groups = []
    for row in np.unique(best[claimed]):
        members = columns[claimed & (best == row)]
        members = members[np.argsort(-influence.values[row, members], kind="stable")]
        groups.append(
            SubPopulation(
                source_class=influence.unit_names[row],
                class_index=int(row),
                members=_projected(influence, int(row), members, target_labels, target_class_names),
            )
        )
    groups.sort(key=lambda g: (-len(g.members), g.class_index))
    unclaimed = tuple(
        ProjectedTarget(
            target_id=influence.target_ids[j],
            index=int(j),
            true_label=target_class,
            influence=float(influence.values[row, j]),
            stderr=float(influence.stderr[row, j]),
        )
        for j, row in zip(columns[~claimed], best[~claimed])
    )
    return TargetClassProjection(
        target_class=target_class,
        output_kind=influence.output_kind,
        estimator=influence.estimator,
        num_models=influence.num_models,
        groups=tuple(groups),
        unclaimed=unclaimed,
    )


def check_projection_request(context: StudyContext, source_class: str | None, target_class: str | None, top: int) -> None:
    """The class named and ``top`` against the study's data, before any estimate: a ``top`` past
    the images there are would only be cut after the estimate (and a huge figure drawn)."""
    results = context.results
    count = len(results.target_ids)
    if (source_class is None) == (target_class is None):
        raise InputError("name either a source class (--source-class) or a target class (--target-class) to project")
    if source_class is not None:
        find_source_class(results.class_names, source_class)
        most = source_projection_limit(count)
        check_top(top, most, f"{most}, half of the study's {count} target test images (no image is listed at both ends)")
    else:
        find_target_class(results.target_class_names, str(target_class))
        check_top(top, count, f"the study's {count} target test images")


def project_study(
    context: StudyContext, source_class: str | None = None, target_class: str | None = None, top: int = 8
) -> SourceProjection | TargetClassProjection:
    """``project`` on a class-level study: the target images ``source_class`` influences most (at
    each end), or the images of ``target_class`` grouped by their most positive source class; every
    name and ``top`` is checked before the example influences are estimated."""
    check_top(top)
    context.require_units("class", "project")
    check_projection_request(context, source_class, target_class, top)
    results = context.results
    influence = example_influence(results, context.kind, context.estimator)
    if source_class is not None:
        return project_source_class(influence, results.target_labels, results.target_class_names, source_class, top)
    return project_target_class(influence, results.target_labels, results.target_class_names, str(target_class))
