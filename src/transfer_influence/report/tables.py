"""CSV tables of influences and baselines (no matplotlib: the ``influence`` command uses these)."""

from __future__ import annotations

import csv
from pathlib import Path

from ..analysis.baselines import BaselineSummary
from ..analysis.rankings import ranked
from ..estimate import InfluenceEstimate


def class_label(name: str) -> str:
    """A class name as shown in tables and plots: single characters quoted ('O' vs 0)."""
    return f"'{name}'" if len(name) == 1 else name


def write_overall_csv(influence: InfluenceEstimate, path: Path) -> None:
    with open(path, "w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["rank", "source_class", "influence", "stderr", "ci95_low", "ci95_high", "n_in", "n_out"])
        half = influence.critical_value(0.95)
        for rank, row in enumerate(ranked(influence, 0), start=1):
            out.writerow(
                [rank, row.name, f"{row.influence:.6g}", f"{row.stderr:.6g}", f"{row.influence - half * row.stderr:.6g}",
                 f"{row.influence + half * row.stderr:.6g}", influence.n_in[row.index], influence.n_out[row.index]]
            )


def write_per_target_csv(influence: InfluenceEstimate, path: Path) -> None:
    with open(path, "w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["target_class", "rank", "source_class", "influence", "stderr"])
        for column, target in enumerate(influence.target_ids):
            for rank, row in enumerate(ranked(influence, column), start=1):
                out.writerow([target, rank, row.name, f"{row.influence:.6g}", f"{row.stderr:.6g}"])


def write_baselines_csv(summary: BaselineSummary, path: Path) -> None:
    with open(path, "w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["backbone", "target_accuracy_mean", "target_accuracy_std", "count"])
        for label, (mean, std, count) in summary.rows.items():
            out.writerow([label, f"{mean:.4f}", f"{std:.4f}", count])
