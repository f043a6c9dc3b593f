"""Few-shot train/test splits of a target dataset.

Transfer influence is measured where transfer matters most: a target task with only a few labelled
examples per class. The split is seeded so that a study can repeat it, and the test set is
stratified so that per-class accuracy is not dominated by whichever class happens to be frequent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from transfer_influence.data.base import ImageDataset
from transfer_influence.errors import InputError


@dataclass(frozen=True)
class TargetSplit:
    """Disjoint train and test parts of one target dataset (same classes and label numbering)."""

    train: ImageDataset
    test: ImageDataset


def _allocate(available: np.ndarray, total: int, rng: np.random.Generator) -> np.ndarray:
    """Share ``total`` test slots over classes as evenly as their remaining examples allow.

    Water-filling: every class gets an equal share, classes that run out leave their share to the
    others, and the last few slots (fewer than the open classes) go to randomly chosen classes.
    """
    alloc = np.zeros_like(available)
    remaining = total
    while remaining > 0:
        open_classes = np.flatnonzero(alloc < available)
        share = remaining // open_classes.size
        if share == 0:
            chosen = rng.permutation(open_classes)[:remaining]
            alloc[chosen] += 1
            break
        add = np.minimum(share, available[open_classes] - alloc[open_classes])
        alloc[open_classes] += add
        remaining -= int(add.sum())
    return alloc


def few_shot_split(
    dataset: ImageDataset, shots_per_class: int, test_size: int | None = None, seed: int = 0
) -> TargetSplit:
    """``shots_per_class`` training examples per class and a stratified test set from the rest.

    ``test_size=None`` puts every remaining example in the test set. The same (dataset, arguments)
    always give the same split; both parts keep the dataset's order.
    """
    if shots_per_class < 1:
        raise InputError(f"shots_per_class must be at least 1, got {shots_per_class}")
    if test_size is not None and test_size < 1:
        raise InputError(f"test_size must be at least 1 (or None for all the rest), got {test_size}")
    rng = np.random.default_rng(seed)
    labels = np.asarray(dataset.labels)
    counts = np.bincount(labels, minlength=dataset.num_classes)
    short = [
        f"{dataset.class_names[c]!r} ({counts[c]})"
        for c in range(dataset.num_classes)
        if counts[c] < shots_per_class + 1
    ]
    if short:
        raise InputError(
            f"dataset {dataset.name!r}: {shots_per_class}-shot split needs at least "
            f"{shots_per_class + 1} examples per class (shots plus one to test); too few in "
            + ", ".join(short)
        )
    train_parts: list[np.ndarray] = []
    pools: list[np.ndarray] = []
    for c in range(dataset.num_classes):
        members = rng.permutation(np.flatnonzero(labels == c))
        train_parts.append(members[:shots_per_class])
        pools.append(members[shots_per_class:])
    available = np.array([p.size for p in pools])
    if test_size is None:
        test_parts = pools
    else:
        if test_size > available.sum():
            raise InputError(
                f"dataset {dataset.name!r}: test_size {test_size} exceeds the "
                f"{int(available.sum())} examples left after {shots_per_class} shots per class"
            )
        alloc = _allocate(available, test_size, rng)
        test_parts = [pool[:k] for pool, k in zip(pools, alloc)]
    train_idx = np.sort(np.concatenate(train_parts))
    test_idx = np.sort(np.concatenate(test_parts))
    return TargetSplit(
        train=dataset.take(train_idx, name=f"{dataset.name}/train-{shots_per_class}shot"),
        test=dataset.take(test_idx, name=f"{dataset.name}/test"),
    )


def fixed_test_split(dataset: ImageDataset, test: ImageDataset, shots_per_class: int, seed: int = 0) -> TargetSplit:
    """``shots_per_class`` training examples per class drawn from ``dataset`` and ``test`` used whole:
    a user's fixed test split stays exactly as given, and the shots never come from it.

    The training draw is the one ``few_shot_split`` makes (the same seeded permutation per class), so
    moving a study's test set to its own dataset leaves its few-shot images as they were.
    """
    if test.class_names != dataset.class_names:
        raise InputError(
            f"target test dataset {test.name!r} has classes {list(test.class_names)[:10]} but the few-shot dataset "
            f"{dataset.name!r} has {list(dataset.class_names)[:10]}; both must list the same classes in the same order"
        )
    if len(test) == 0:
        raise InputError(f"target test dataset {test.name!r} is empty; give a dataset with test images")
    rng = np.random.default_rng(seed)
    labels = np.asarray(dataset.labels)
    counts = np.bincount(labels, minlength=dataset.num_classes)
    short = [f"{dataset.class_names[c]!r} ({counts[c]})" for c in range(dataset.num_classes) if counts[c] < shots_per_class]
    if short:
        raise InputError(
            f"dataset {dataset.name!r}: a {shots_per_class}-shot training set needs {shots_per_class} examples per "
            "class; too few in " + ", ".join(short)
        )
    parts = [rng.permutation(np.flatnonzero(labels == c))[:shots_per_class] for c in range(dataset.num_classes)]
    return TargetSplit(
        train=dataset.take(np.sort(np.concatenate(parts)), name=f"{dataset.name}/train-{shots_per_class}shot"),
        test=test,
    )
