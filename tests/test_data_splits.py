"""Few-shot target splits: disjoint, stratified, seeded, and loud about impossible requests."""

from __future__ import annotations

import numpy as np
import pytest

from transfer_influence.data import ImageDataset, TargetSplit, few_shot_split


def dataset(counts: tuple[int, ...] = (10, 7, 5)) -> ImageDataset:
    labels = np.concatenate([np.full(n, c) for c, n in enumerate(counts)])
    labels = labels[np.random.default_rng(0).permutation(labels.size)]  # classes interleaved
    n = labels.size
    images = np.arange(n, dtype=np.uint8).reshape(n, 1, 1, 1)
    ids = np.array([f"toy/{i:03d}" for i in range(n)])
    names = tuple(f"c{c}" for c in range(len(counts)))
    return ImageDataset("toy", images, labels.astype(np.int64), names, ids)


def test_shots_and_rest() -> None:
    data = dataset()
    split = few_shot_split(data, shots_per_class=2, test_size=None, seed=0)
    assert isinstance(split, TargetSplit)
    assert np.bincount(split.train.labels).tolist() == [2, 2, 2]
    assert np.bincount(split.test.labels).tolist() == [8, 5, 3]
    train_ids, test_ids = set(split.train.example_ids), set(split.test.example_ids)
    assert not train_ids & test_ids
    assert train_ids | test_ids == set(data.example_ids)
    # Parts keep the dataset's order and its class numbering.
    assert list(split.train.example_ids) == sorted(split.train.example_ids)
    assert split.train.class_names == data.class_names
    # Images travel with their ids.
    for part in (split.train, split.test):
        positions = [int(i.split("/")[1]) for i in part.example_ids]
        assert part.images[:, 0, 0, 0].tolist() == positions


def test_test_size_is_stratified_as_evenly_as_possible() -> None:
    split = few_shot_split(dataset(), shots_per_class=2, test_size=7, seed=0)
    counts = np.bincount(split.test.labels, minlength=3)
    assert counts.sum() == 7 and counts.max() - counts.min() <= 1
    # Classes that run out give what they have, the others take their part: available (8, 5, 3).
    split = few_shot_split(dataset(), shots_per_class=2, test_size=15, seed=0)
    assert np.bincount(split.test.labels).tolist() == [7, 5, 3]
    split = few_shot_split(dataset(), shots_per_class=2, test_size=11, seed=0)
    assert np.bincount(split.test.labels).tolist() == [4, 4, 3]


def test_same_seed_same_split_other_seed_other_split() -> None:
    data = dataset()
    a = few_shot_split(data, 2, 6, seed=3)
    b = few_shot_split(data, 2, 6, seed=3)
    assert a.train.example_ids.tolist() == b.train.example_ids.tolist()
    assert a.test.example_ids.tolist() == b.test.example_ids.tolist()
    others = [few_shot_split(data, 2, 6, seed=s).train.example_ids.tolist() for s in range(4, 9)]
    assert any(o != a.train.example_ids.tolist() for o in others)


def test_test_size_per_class_picks_vary_with_seed() -> None:
    data = dataset((20, 20))
    picks = {tuple(few_shot_split(data, 1, 3, seed=s).test.example_ids) for s in range(6)}
    assert len(picks) > 1


def test_errors() -> None:
    data = dataset()
    with pytest.raises(ValueError, match="'c2' \\(5\\)"):
        few_shot_split(data, shots_per_class=5, test_size=None, seed=0)
    with pytest.raises(ValueError, match="exceeds"):
        few_shot_split(data, shots_per_class=2, test_size=17, seed=0)
    with pytest.raises(ValueError):
        few_shot_split(data, shots_per_class=0, test_size=None, seed=0)
    with pytest.raises(ValueError):
        few_shot_split(data, shots_per_class=1, test_size=0, seed=0)


def test_a_class_with_no_examples_is_an_error() -> None:
    data = dataset((4, 4))
    emptied = data.take(np.flatnonzero(data.labels == 0))
    with pytest.raises(ValueError, match="c1"):
        few_shot_split(emptied, shots_per_class=1, test_size=None, seed=0)
