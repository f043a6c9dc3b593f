"""CSV tables of projections and explained mistakes (no matplotlib)."""

from __future__ import annotations

import csv
import re
from pathlib import Path

from ..analysis.debugging import Explanation
from ..analysis.projection import SourceProjection, TargetClassProjection


def file_stem(name: str) -> str:
    """A class name or target id as part of a file name ('glyphs/A' → 'glyphs_A')."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "unnamed"


def write_source_projection_csv(projection: SourceProjection, path: Path) -> None:
    with open(path, "w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["end", "rank", "target_id", "true_label", "influence", "stderr"])
        for end, entries in (("most_positive", projection.most_positive), ("most_negative", projection.most_negative)):
            for rank, entry in enumerate(entries, start=1):
                out.writerow([end, rank, entry.target_id, entry.true_label, f"{entry.influence:.6g}", f"{entry.stderr:.6g}"])


def write_target_projection_csv(projection: TargetClassProjection, path: Path) -> None:
    """One row per image of the target class: the source class with the largest positive influence on it."""
    with open(path, "w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["source_class", "group_size", "target_id", "influence", "stderr"])
        for group in projection.groups:
            for entry in group.members:
                out.writerow([group.source_class, len(group.members), entry.target_id,
                              f"{entry.influence:.6g}", f"{entry.stderr:.6g}"])
        for entry in projection.unclaimed:
            out.writerow(["", len(projection.unclaimed), entry.target_id, f"{entry.influence:.6g}", f"{entry.stderr:.6g}"])


def write_explanations_csv(explanations: list[Explanation], path: Path) -> None:
    with open(path, "w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow([
            "target_id", "true_label", "accuracy", "mean_p_true", "rank", "source_class", "influence", "stderr",
            "ci95_low", "ci95_high", "models_with", "models_without", "p_true_with", "p_true_without",
            "accuracy_with", "accuracy_without",
        ])
        for e in explanations:
            for rank, s in enumerate(e.suspects, start=1):
                out.writerow([
                    e.target_id, e.true_label, f"{e.accuracy:.6g}", f"{e.mean_p_true:.6g}", rank, s.name,
                    f"{s.influence:.6g}", f"{s.stderr:.6g}", f"{s.ci95_low:.6g}", f"{s.ci95_high:.6g}",
                    s.models_with, s.models_without, f"{s.p_true_with:.6g}", f"{s.p_true_without:.6g}",
                    f"{s.accuracy_with:.6g}", f"{s.accuracy_without:.6g}",
                ])
