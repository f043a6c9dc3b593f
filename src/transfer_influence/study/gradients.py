"""Projected per-example gradients of a study's gradient models, stored in ``STUDY/gradients/``.

One file per gradient model (``model-000.npz``, ...), written atomically, so a computation that is
interrupted resumes at the first missing model. A file records the settings it was computed with;
a file whose settings differ from the ones asked for is refused rather than mixed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from .atomic import atomic_write_npz

GRADIENTS_FOLDER = "gradients"


@dataclass(frozen=True)
class GradientSettings:
    """What a gradient model's projected gradients depend on, besides the study itself."""

    dims: int
    """d, the dimension of the random projection."""
    projection_seed: int
    """Seed of the Rademacher projection (the same projection for every model, as TRAK's)."""

    def as_array(self) -> np.ndarray:
        return np.array([self.dims, self.projection_seed], dtype=np.int64)


@dataclass(frozen=True)
class ProjectedGradients:
    """One transferred model's projected gradients: source rows through the source head, target test
    rows through the target head (float32, rows × d), and the source examples' TRAK weights."""

    source: np.ndarray
    target: np.ndarray
    source_weights: np.ndarray
    """1 − p(true class) of every source training example under the source head (TRAK's Q)."""
    seed: int
    """The training seed of the source model these gradients come from."""


def gradient_file(study: Path, index: int) -> Path:
    return Path(study) / GRADIENTS_FOLDER / f"model-{index:03d}.npz"


def save_gradients(path: Path, found: ProjectedGradients, settings: GradientSettings) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_npz(
        path,
        {
            "source": found.source,
            "target": found.target,
            "source_weights": found.source_weights,
            "seed": np.array(found.seed, dtype=np.int64),
            "settings": settings.as_array(),
        },
    )


def load_gradients(path: Path, settings: GradientSettings, seed: int) -> ProjectedGradients:
    """A stored model's gradients; refused when they were computed with other settings or seed."""
    with np.load(path, allow_pickle=False) as archive:
        stored = archive["settings"]
        if not np.array_equal(stored, settings.as_array()) or int(archive["seed"]) != seed:
            raise InputError(
                f"{path} holds gradients for dims/projection seed {stored.tolist()} and model seed "
                f"{int(archive['seed'])}, not {settings.as_array().tolist()} and {seed}; remove "
                f"{path.parent} or ask for the settings it was computed with"
            )
        return ProjectedGradients(
            archive["source"], archive["target"], archive["source_weights"], int(archive["seed"])
        )
