"""Planted faults: a source with known leaks and mislabels, the ground truth for leak detection.

The paper finds, among the source images with the largest influence on a target image, near-copies
of that very image (leaks) and images with a wrong label (mislabels). Whether a tool finds them can
only be measured on a source whose faults are known, so this module plants them:

* **leaks**: copies of target *test* images put into the source under the source class of the same
  name (a '7' from the target test set becomes a training image of the source class '7'), either
  exact or lightly augmented (shifted by up to 2 pixels, contrast scaled by 0.85–1.0, a little
  noise), as a scrape that overlaps a benchmark would hold;
* **mislabels**: source training images of the classes the target shares, given the label of
  another shared class.

Every planted example says what it is in its example id, so the ground truth travels with the
study's data views and needs no side file: ``planted-leak/exact/<target test id>``,
``planted-leak/augmented/<target test id>`` and ``planted-mislabel/<class shown, '/' written %2F>/<original id>``.
Deterministic given the seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, unquote

import numpy as np

from .base import ImageDataset

LEAK_PREFIX = "planted-leak"
MISLABEL_PREFIX = "planted-mislabel"
LEAK_STYLES = ("exact", "augmented")
MAX_SHIFT = 2
"""Largest shift, in pixels, of an augmented leak: light enough to stay the same image."""

_LEAK_STREAM = 0x1EA4
_MISLABEL_STREAM = 0x3151


@dataclass(frozen=True)
class PlantedFaults:
    """The ground truth of a source read back from its example ids (see the module docstring)."""

    leak_rows: np.ndarray
    """Rows (mask columns) of the planted leaks in the source training set."""
    leak_targets: tuple[str, ...]
    """For each leak, the id of the target test image it copies."""
    leak_styles: tuple[str, ...]
    """For each leak, 'exact' or 'augmented'."""
    mislabel_rows: np.ndarray
    """Rows of the planted mislabels."""
    mislabel_shown: tuple[str, ...]
    """For each mislabel, the class its image really shows."""

    @property
    def empty(self) -> bool:
        return self.leak_rows.size == 0 and self.mislabel_rows.size == 0


def shared_classes(source: ImageDataset, target: ImageDataset) -> dict[int, int]:
    """Target label → source label of the class with the same name."""
    position = {name: k for k, name in enumerate(source.class_names)}
    return {t: position[name] for t, name in enumerate(target.class_names) if name in position}


def plant_faults(
    source: ImageDataset,
    target_test: ImageDataset,
    leaks_exact: int = 0,
    leaks_augmented: int = 0,
    mislabels: int = 0,
    seed: int = 0,
) -> ImageDataset:
    """``source`` with planted leaks (appended) and mislabels (relabelled in place).

    Leaks copy distinct target test images, drawn at random among those whose class the source
    has; mislabels are drawn from the source images of those classes. Raises ValueError, before any
    copying, when the source shares no class name with the target or holds too few images.
    """
    for name, count in (("leaks_exact", leaks_exact), ("leaks_augmented", leaks_augmented), ("mislabels", mislabels)):
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
            raise ValueError(f"source.plant.{name} must be a non-negative integer, got {count!r}")
    if leaks_exact + leaks_augmented + mislabels == 0:
        return source
    shared = shared_classes(source, target_test)
    if not shared:
        raise ValueError(
            f"source.plant: no source class has the name of a target class (target classes: "
            f"{', '.join(target_test.class_names[:10])} ...); leaks go under the source class of the same name, "
            "so add a source component with the target's classes (e.g. glyphs digits for an MNIST target)"
        )
    if source.image_shape != target_test.image_shape:
        raise ValueError(f"source.plant: source images are {source.image_shape}, target images {target_test.image_shape}")
    planted = _relabel(source, shared, mislabels, seed)
    return _append_leaks(planted, target_test, shared, leaks_exact, leaks_augmented, seed)


def _relabel(source: ImageDataset, shared: dict[int, int], count: int, seed: int) -> ImageDataset:
    if count == 0:
        return source
    if len(shared) < 2:
        raise ValueError("source.plant.mislabels needs at least 2 classes shared with the target, to swap labels between")
    classes = np.array(sorted(shared.values()))
    candidates = np.flatnonzero(np.isin(source.labels, classes))
    if count > candidates.size // 2:
        raise ValueError(
            f"source.plant.mislabels={count}: at most half of the {candidates.size} source images of the classes "
            "shared with the target may be mislabelled; lower it"
        )
    rng = np.random.default_rng([_MISLABEL_STREAM, seed])
    rows = np.sort(rng.choice(candidates, count, replace=False))
    labels = source.labels.astype(np.int64).copy()
    ids = source.example_ids.astype(object).copy()
    for row in rows:
        shown = int(labels[row])
        others = classes[classes != shown]
        labels[row] = int(others[rng.integers(others.size)])
        ids[row] = f"{MISLABEL_PREFIX}/{quote(source.class_names[shown], safe='')}/{source.example_ids[row]}"
    return ImageDataset(source.name, source.images, labels, source.class_names, ids.astype(str))


def _append_leaks(
    source: ImageDataset, target_test: ImageDataset, shared: dict[int, int], exact: int, augmented: int, seed: int
) -> ImageDataset:
    total = exact + augmented
    if total == 0:
        return source
    candidates = np.flatnonzero(np.isin(target_test.labels, list(shared)))
    if total > candidates.size:
        raise ValueError(
            f"source.plant: {total} leaks need as many distinct target test images of shared classes; "
            f"there are {candidates.size}"
        )
    rng = np.random.default_rng([_LEAK_STREAM, seed])
    chosen = np.sort(rng.choice(candidates, total, replace=False))
    styles = np.array(["exact"] * exact + ["augmented"] * augmented)[rng.permutation(total)]
    images = target_test.images[chosen].copy()
    for i in np.flatnonzero(styles == "augmented"):
        images[i] = augment(images[i], rng)
    labels = np.array([shared[int(t)] for t in target_test.labels[chosen]], dtype=np.int64)
    ids = np.array(
        [f"{LEAK_PREFIX}/{style}/{target_test.example_ids[t]}" for style, t in zip(styles, chosen)]
    )
    return ImageDataset(
        source.name,
        np.concatenate([source.images, images]),
        np.concatenate([source.labels.astype(np.int64), labels]),
        source.class_names,
        np.concatenate([source.example_ids.astype(str), ids]),
    )


def augment(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A light change of one uint8 (C, H, W) image: a shift of up to ``MAX_SHIFT`` pixels (a non-zero
    one), contrast scaled by 0.85–1.0 and Gaussian noise of 4 grey levels."""
    while True:
        dy, dx = (int(v) for v in rng.integers(-MAX_SHIFT, MAX_SHIFT + 1, size=2))
        if dy or dx:
            break
    shifted = np.zeros_like(image)
    h, w = image.shape[1:]
    shifted[:, max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = image[
        :, max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    scaled = shifted.astype(np.float64) * rng.uniform(0.85, 1.0) + rng.normal(0.0, 4.0, size=image.shape)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def read_planted(example_ids: np.ndarray | tuple[str, ...]) -> PlantedFaults:
    """The planted leaks and mislabels of a source, from its example ids."""
    leak_rows: list[int] = []
    leak_targets: list[str] = []
    leak_styles: list[str] = []
    mislabel_rows: list[int] = []
    mislabel_shown: list[str] = []
    for row, raw in enumerate(example_ids):
        parts = str(raw).split("/", 2)
        if parts[0] == LEAK_PREFIX and len(parts) == 3 and parts[1] in LEAK_STYLES:
            leak_rows.append(row)
            leak_styles.append(parts[1])
            leak_targets.append(parts[2])
        elif parts[0] == MISLABEL_PREFIX and len(parts) == 3:
            mislabel_rows.append(row)
            mislabel_shown.append(unquote(parts[1]))
    return PlantedFaults(
        np.array(leak_rows, dtype=np.int64),
        tuple(leak_targets),
        tuple(leak_styles),
        np.array(mislabel_rows, dtype=np.int64),
        tuple(mislabel_shown),
    )
