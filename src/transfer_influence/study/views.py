"""The study's dataset views: source train/holdout and target train/test, built once per study.

The parent process builds the views from the config and saves them inside the study directory;
workers read that file instead of rebuilding, so every model of a study sees byte-identical data
and the fingerprints in ``study.json`` describe exactly what was trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from .atomic import atomic_write_npz
from .config import DatasetSpec, StudyConfig
from ..data import ImageDataset, concatenate, few_shot_split, load_dataset

_HOLDOUT_STREAM = 0x401D


@dataclass(frozen=True)
class StudyData:
    source_train: ImageDataset
    source_holdout: ImageDataset
    target_train: ImageDataset
    target_test: ImageDataset
    target_train_heads: np.ndarray
    """For each target training example, the head (few-shot split) it trains."""

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.source_train.class_names

    @property
    def target_class_names(self) -> tuple[str, ...]:
        return self.target_test.class_names

    def fingerprints(self) -> dict[str, str]:
        return {
            "source_train": self.source_train.fingerprint(),
            "source_holdout": self.source_holdout.fingerprint(),
            "target_train": self.target_train.fingerprint(),
            "target_test": self.target_test.fingerprint(),
        }

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
    target = load_spec(config.target.dataset)
    if target.image_shape != source.image_shape:
        raise InputError(
            f"source images are {source.image_shape} but target images are {target.image_shape}; "
            "set image_size and channels on the dataset entries so that they match"
        )
    heads = config.target.head_splits
    split = few_shot_split(
        target, config.target.shots_per_class * heads, config.target.test_size, config.target.split_seed
    )
    head_of = _assign_heads(split.train.labels, heads, config.target.split_seed)
    return StudyData(source_train, source_holdout, split.train, split.test, head_of)


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


def save_study_data(data: StudyData, path: Path) -> None:
    arrays: dict[str, np.ndarray] = {}
    for part in _PARTS:
        ds: ImageDataset = getattr(data, part)
        arrays[f"{part}__images"] = ds.images
        arrays[f"{part}__labels"] = ds.labels
        arrays[f"{part}__ids"] = ds.example_ids.astype(str)
        arrays[f"{part}__classes"] = np.asarray(ds.class_names, dtype=str)
        arrays[f"{part}__name"] = np.asarray(ds.name)
    arrays["target_train__heads"] = data.target_train_heads
    atomic_write_npz(path, arrays)


def load_study_data(path: Path) -> StudyData:
    with np.load(path, allow_pickle=False) as archive:
        parts = {
            part: ImageDataset(
                name=str(archive[f"{part}__name"]),
                images=archive[f"{part}__images"],
                labels=archive[f"{part}__labels"].astype(np.int64),
                class_names=tuple(str(c) for c in archive[f"{part}__classes"]),
                example_ids=archive[f"{part}__ids"],
            )
            for part in _PARTS
        }
        heads = archive["target_train__heads"]
    return StudyData(**parts, target_train_heads=heads)
