"""The study's dataset views: source train/holdout and target train/test, built once per study.

The parent process builds the views from the config and saves them inside the study directory;
workers read that file instead of rebuilding, so every model of a study sees byte-identical data
and the fingerprints in ``study.json`` describe exactly what was trained on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .atomic import atomic_write_npz
from .config import DatasetSpec, PlantConfig, StudyConfig, TargetConfig
from ..data import ImageDataset, concatenate, few_shot_split, load_dataset
from ..data.splits import TargetSplit, fixed_test_split
from ..data.planted import plant_faults

_HOLDOUT_STREAM = 0x401D


@dataclass(frozen=True)
class TargetData:
    """One target's few-shot training set, its test set, and the head each training example trains."""

    train: ImageDataset
    test: ImageDataset
    train_heads: np.ndarray


@dataclass(frozen=True)
class StudyData:
    source_train: ImageDataset
    source_holdout: ImageDataset
    target_train: ImageDataset
    target_test: ImageDataset
    target_train_heads: np.ndarray
    """For each target training example, the head (few-shot split) it trains."""
    extra_targets: dict[str, TargetData] = field(default_factory=dict)
    """The config's ``extra_targets`` by name, in its order (the primary target is the fields above)."""

    @property
    def primary_target(self) -> TargetData:
        return TargetData(self.target_train, self.target_test, self.target_train_heads)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.source_train.class_names

    @property
    def target_class_names(self) -> tuple[str, ...]:
        return self.target_test.class_names

    def fingerprints(self) -> dict[str, str]:
        """One per view; an extra target's are ``target_train__<name>`` and ``target_test__<name>``
        (a one-target study has exactly the four it always had)."""
        found = {
            "source_train": self.source_train.fingerprint(),
            "source_holdout": self.source_holdout.fingerprint(),
            "target_train": self.target_train.fingerprint(),
            "target_test": self.target_test.fingerprint(),
        }
        for name, target in self.extra_targets.items():
            found[f"target_train__{name}"] = target.train.fingerprint()
            found[f"target_test__{name}"] = target.test.fingerprint()
        return found

    def summary(self) -> dict[str, object]:
        return {
            "source_classes": len(self.class_names),
            "source_train_examples": len(self.source_train),
            "source_holdout_examples": len(self.source_holdout),
            "target_classes": len(self.target_class_names),
            "target_train_examples": len(self.target_train),
            "target_test_examples": len(self.target_test),
            "image_shape": list(self.source_train.image_shape),
        }


def build_study_data(config: StudyConfig) -> StudyData:
    components = [load_spec(c) for c in config.source.components]
    source = components[0] if len(components) == 1 else concatenate(components, name="mixed_source")
    source_train, source_holdout = _holdout_split(source, config.source.holdout_per_class, config.seed)
    primary = build_target_data(config.target, source.image_shape)
    if config.source.plant is not None:
        source_train = _with_planted_faults(source_train, primary.test, config.source.plant)
    extras = {t.name: build_target_data(t, source.image_shape) for t in config.extra_targets}
    return StudyData(source_train, source_holdout, primary.train, primary.test, primary.train_heads, extras)


def build_target_data(target_config: TargetConfig, source_shape: tuple[int, ...]) -> TargetData:
    """One target's views: the same whether it is a study's primary target or an extra one, so an
    extra target's outputs equal those of a study that has it as its only target."""
    heads = target_config.head_splits
    split = _target_split(target_config, source_shape)
    head_of = _assign_heads(split.train.labels, heads, target_config.split_seed)
    return TargetData(split.train, split.test, head_of)


def _target_split(target_config: TargetConfig, source_shape: tuple[int, ...]) -> TargetSplit:
    """The few-shot training set and the test set: both from ``dataset``, or the test set from its
    own ``test_dataset`` (used whole)."""
    target = _target_images(target_config.dataset, target_config.name, source_shape)
    shots = target_config.shots_per_class * target_config.head_splits
    if target_config.test_dataset is None:
        return few_shot_split(target, shots, target_config.test_size, target_config.split_seed)
    test = _target_images(target_config.test_dataset, target_config.name, source_shape)
    return fixed_test_split(target, test, shots, target_config.split_seed)


def _target_images(spec: DatasetSpec, target_name: str, source_shape: tuple[int, ...]) -> ImageDataset:
    dataset = load_spec(spec)
    if dataset.image_shape != source_shape:
        raise InputError(
            f"source images are {source_shape} but images of target {target_name!r} ({spec.dataset}) are "
            f"{dataset.image_shape}; set image_size and channels on the dataset entries so that they match"
        )
    return dataset


def _with_planted_faults(source_train: ImageDataset, target_test: ImageDataset, plant: PlantConfig) -> ImageDataset:
    """The training source with ``source.plant``'s faults; the holdout stays clean, so source
    accuracy is measured on true labels."""
    try:
        return plant_faults(
            source_train, target_test, plant.leaks_exact, plant.leaks_augmented, plant.mislabels, plant.seed
        )
    except ValueError as exc:
        raise InputError(str(exc)) from None


def _assign_heads(labels: np.ndarray, heads: int, seed: int) -> np.ndarray:
    """Deal each class's training examples evenly and at random to ``heads`` few-shot sets."""
    rng = np.random.default_rng([_HOLDOUT_STREAM, seed, heads])
    head_of = np.zeros(labels.size, dtype=np.int64)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        head_of[members] = rng.permutation(members.size) % heads
    return head_of


def load_spec(spec: DatasetSpec) -> ImageDataset:
    """Load a dataset and bring it to the requested image size and channel count."""
    dataset = load_dataset(spec.dataset, **spec.options)
    if spec.image_size is None and spec.channels is None:
        return dataset
    from ..data.formats import resize

    channels, height, _ = dataset.image_shape
    return resize(dataset, spec.image_size or height, spec.channels or channels)


def _holdout_split(source: ImageDataset, per_class: int, seed: int) -> tuple[ImageDataset, ImageDataset]:
    """Keep ``per_class`` examples of every source class out of training, to measure source accuracy."""
    rng = np.random.default_rng([_HOLDOUT_STREAM, seed])
    train_idx: list[np.ndarray] = []
    holdout_idx: list[np.ndarray] = []
    for k, name in enumerate(source.class_names):
        members = np.flatnonzero(source.labels == k)
        if members.size <= per_class:
            raise InputError(
                f"source class {name!r} has {members.size} examples, not more than "
                f"source.holdout_per_class={per_class}; lower holdout_per_class or add examples"
            )
        members = rng.permutation(members)
        holdout_idx.append(members[:per_class])
        train_idx.append(members[per_class:])
    return (
        source.take(np.sort(np.concatenate(train_idx)), name=f"{source.name}:train"),
        source.take(np.sort(np.concatenate(holdout_idx)), name=f"{source.name}:holdout"),
    )


_PARTS = ("source_train", "source_holdout", "target_train", "target_test")
EXTRA_TARGETS_MEMBER = "extra_targets"
"""``data.npz`` member listing the extra targets' names (absent from one-target studies)."""


def view_prefix(part: str, target: str | None = None) -> str:
    """Prefix of a view's members in ``data.npz``: ``target_test`` for the primary target's test set,
    ``target_test__<name>`` for an extra target's."""
    return part if target is None else f"{part}__{target}"


def save_study_data(data: StudyData, path: Path) -> None:
    arrays: dict[str, np.ndarray] = {}
    for part in _PARTS:
        _put_dataset(arrays, part, getattr(data, part))
    arrays["target_train__heads"] = data.target_train_heads
    for name, target in data.extra_targets.items():
        _put_dataset(arrays, view_prefix("target_train", name), target.train)
        _put_dataset(arrays, view_prefix("target_test", name), target.test)
        arrays[f"{view_prefix('target_train', name)}__heads"] = target.train_heads
    if data.extra_targets:
        arrays[EXTRA_TARGETS_MEMBER] = np.asarray(list(data.extra_targets), dtype=str)
    atomic_write_npz(path, arrays)


def _put_dataset(arrays: dict[str, np.ndarray], prefix: str, ds: ImageDataset) -> None:
    arrays[f"{prefix}__images"] = ds.images
    arrays[f"{prefix}__labels"] = ds.labels
    arrays[f"{prefix}__ids"] = ds.example_ids.astype(str)
    arrays[f"{prefix}__classes"] = np.asarray(ds.class_names, dtype=str)
    arrays[f"{prefix}__name"] = np.asarray(ds.name)


def _get_dataset(archive: Any, prefix: str) -> ImageDataset:
    return ImageDataset(
        name=str(archive[f"{prefix}__name"]),
        images=archive[f"{prefix}__images"],
        labels=archive[f"{prefix}__labels"].astype(np.int64),
        class_names=tuple(str(c) for c in archive[f"{prefix}__classes"]),
        example_ids=archive[f"{prefix}__ids"],
    )


def load_study_data(path: Path) -> StudyData:
    with np.load(path, allow_pickle=False) as archive:
        parts = {part: _get_dataset(archive, part) for part in _PARTS}
        heads = archive["target_train__heads"]
        names = [str(n) for n in archive[EXTRA_TARGETS_MEMBER]] if EXTRA_TARGETS_MEMBER in archive.files else []
        extras = {
            name: TargetData(
                _get_dataset(archive, view_prefix("target_train", name)),
                _get_dataset(archive, view_prefix("target_test", name)),
                archive[f"{view_prefix('target_train', name)}__heads"],
            )
            for name in names
        }
    return StudyData(**parts, target_train_heads=heads, extra_targets=extras)
