"""The one dataset interface every loader returns.

Images are kept as ``uint8`` arrays of shape ``(N, C, H, W)`` so that a whole source dataset fits in
memory on a laptop and can be shared by worker processes as a read-only array; models normalise
them to floats on the fly.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class ImageDataset:
    """Images with integer labels, readable class names and stable example ids.

    ``example_ids`` identify an example independently of its position (for instance
    ``"glyphs/A/DejaVuSans/0003"``), so that results can be joined across studies.
    """

    name: str
    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    example_ids: np.ndarray
    _fingerprint: list[str] = field(default_factory=list, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.images.dtype != np.uint8 or self.images.ndim != 4:
            raise ValueError(
                f"dataset {self.name!r}: images must be uint8 of shape (N, C, H, W), "
                f"got {self.images.dtype} {self.images.shape}"
            )
        n = self.images.shape[0]
        if self.labels.shape != (n,) or self.example_ids.shape != (n,):
            raise ValueError(
                f"dataset {self.name!r}: {n} images but labels {self.labels.shape} "
                f"and example ids {self.example_ids.shape}"
            )
        if n and (self.labels.min() < 0 or self.labels.max() >= len(self.class_names)):
            raise ValueError(
                f"dataset {self.name!r}: labels must lie in [0, {len(self.class_names)})"
            )

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = self.images.shape[1:]
        return int(c), int(h), int(w)

    def fingerprint(self) -> str:
        """A short content hash: a study refuses to mix results computed on different data."""
        if not self._fingerprint:
            digest = hashlib.sha256()
            digest.update(np.ascontiguousarray(self.images).tobytes())
            digest.update(np.ascontiguousarray(self.labels.astype(np.int64)).tobytes())
            digest.update("\x1f".join(self.class_names).encode())
            digest.update("\x1f".join(map(str, self.example_ids.tolist())).encode())
            self._fingerprint.append(digest.hexdigest()[:16])
        return self._fingerprint[0]

    def take(self, indices: np.ndarray | Sequence[int], name: str | None = None) -> "ImageDataset":
        """The examples at ``indices``, with the same class names and label numbering."""
        idx = np.asarray(indices, dtype=np.int64)
        return ImageDataset(
            name=name or self.name,
            images=self.images[idx],
            labels=self.labels[idx],
            class_names=self.class_names,
            example_ids=self.example_ids[idx],
        )


def concatenate(datasets: Sequence[ImageDataset], name: str) -> ImageDataset:
    """Stack datasets side by side as one, with their classes numbered one after the other.

    Used for the mixed source (glyph classes plus clothing classes). Class names must stay unique.
    """
    shapes = {d.image_shape for d in datasets}
    if len(shapes) != 1:
        raise ValueError(f"cannot combine datasets with different image shapes: {sorted(shapes)}")
    names: list[str] = []
    labels: list[np.ndarray] = []
    for d in datasets:
        labels.append(d.labels.astype(np.int64) + len(names))
        names.extend(d.class_names)
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ValueError(f"combined source has duplicate class names {duplicated}; rename them")
    return ImageDataset(
        name=name,
        images=np.concatenate([d.images for d in datasets]),
        labels=np.concatenate(labels),
        class_names=tuple(names),
        example_ids=np.concatenate([d.example_ids.astype(str) for d in datasets]),
    )
