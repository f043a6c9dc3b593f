"""The figure and table each of ``project``, ``explain`` and ``leaks`` writes, in the command's folder.

Why apart from ``build.py``: these commands answer one question each (a class's projection, the
suspects of some images, the leak pairs), so they write one figure and one CSV per call rather than
a whole report; the numbers come from the analysis layer's entry functions, which take the same
``StudyContext``, and the folder is the context's (``STUDY/<folder>/``, ``target-<name>/`` inside
it for an extra target) unless the caller names one. Every folder is created here, after the
numbers exist, so that a refused command leaves none.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..analysis.context import StudyContext
from ..analysis.debugging import StudyExplanations
from ..analysis.planted import LeakFindings, PlantedScore
from ..analysis.projection import SourceProjection, TargetClassProjection, load_study_images
from .build import class_thumbnails
from .leak_tables import write_leak_pairs_csv, write_planted_curve_csv
from .plots import plot_explanations, plot_leak_pairs, plot_planted_curve, plot_source_projection, plot_target_projection
from .projection_tables import file_stem, write_explanations_csv, write_source_projection_csv, write_target_projection_csv

PROJECTION_DIR = "projection"
EXPLAIN_DIR = "explain"
LEAKS_DIR = "leaks"


@dataclass(frozen=True)
class CommandFiles:
    """The figure and the table one command call wrote."""

    figure: Path
    table: Path


def write_projection(
    context: StudyContext, projection: SourceProjection | TargetClassProjection, top: int, out: Path | None = None
) -> CommandFiles:
    """``project``'s grid and CSV, named by the class, output kind and estimator (``top``: the images
    drawn per sub-population of a target class)."""
    folder = _created(out or context.folder(PROJECTION_DIR))
    images = load_study_images(context)
    suffix = f"{context.kind}_{context.estimator}"
    if isinstance(projection, SourceProjection):
        stem = folder / f"source_{file_stem(projection.source_class)}_{suffix}"
        write_source_projection_csv(projection, stem.with_suffix(".csv"))
        plot_source_projection(projection, images, stem.with_suffix(".png"))
    else:
        stem = folder / f"target_{file_stem(projection.target_class)}_{suffix}"
        write_target_projection_csv(projection, stem.with_suffix(".csv"))
        plot_target_projection(projection, images, class_thumbnails(images), stem.with_suffix(".png"), top)
    return CommandFiles(stem.with_suffix(".png"), stem.with_suffix(".csv"))


def write_explanations(context: StudyContext, found: StudyExplanations, out: Path | None = None) -> CommandFiles:
    """``explain``'s figure and CSV: ``targets_<ids>_…`` for the images asked about, else
    ``most_mispredicted_…``."""
    if found.images:
        name, title = "targets_" + file_stem("+".join(found.images)), "Most negative source classes of the chosen target images"
    else:
        name, title = "most_mispredicted", "Most negative source classes of the most often mispredicted target images"
    folder = _created(out or context.folder(EXPLAIN_DIR))
    stem = folder / f"{name}_{context.kind}_{context.estimator}"
    write_explanations_csv(found.explanations, stem.with_suffix(".csv"))
    plot_explanations(found.explanations, load_study_images(context), stem.with_suffix(".png"), title)
    return CommandFiles(stem.with_suffix(".png"), stem.with_suffix(".csv"))


def write_leak_pairs(context: StudyContext, findings: LeakFindings, top: int, out: Path | None = None) -> CommandFiles:
    """``leaks``' ``pairs.csv`` (every pair) and ``pairs.png`` (the ``top`` at each end)."""
    folder = _created(out or context.folder(LEAKS_DIR))
    write_leak_pairs_csv(findings.ranking, folder / "pairs.csv")
    plot_leak_pairs(findings.ranking, load_study_images(context), folder / "pairs.png", top)
    return CommandFiles(folder / "pairs.png", folder / "pairs.csv")


def write_planted_curve(context: StudyContext, scores: Sequence[PlantedScore], out: Path | None = None) -> CommandFiles:
    """``leaks --curve``: ``planted_curve.csv`` and ``.png``, beside the pairs."""
    folder = _created(out or context.folder(LEAKS_DIR))
    write_planted_curve_csv(scores, folder / "planted_curve.csv")
    plot_planted_curve(list(scores), folder / "planted_curve.png")
    return CommandFiles(folder / "planted_curve.png", folder / "planted_curve.csv")


def _created(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder
