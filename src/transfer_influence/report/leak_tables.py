"""CSV table of leak candidates: (target image, source example) pairs ranked over the target set."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

from ..analysis.leaks import LeakRanking
from ..analysis.planted import PlantedScore

LEAK_COLUMNS = ("target_id", "target_label", "source_id", "source_class", "coefficient", "sign", "rank")


def write_leak_pairs_csv(ranking: LeakRanking, path: Path) -> None:
    """One row per pair: the positive pairs (candidate leaks) first, then the negative ones
    (candidate mislabeled or misleading examples), each in its rank order."""
    with open(path, "w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(LEAK_COLUMNS)
        for pair in ranking.pairs():
            out.writerow([pair.target_id, pair.target_label, pair.source_id, pair.source_class,
                          f"{pair.coefficient:.6g}", pair.sign, pair.rank])


def write_planted_curve_csv(scores: Sequence[PlantedScore], path: Path) -> None:
    """One row per (model count, estimator): detection of the planted faults (see ``analysis.planted``)."""
    rows = [score.row() for score in scores]
    with open(path, "w", newline="") as handle:
        out = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        out.writeheader()
        out.writerows({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in row.items()} for row in rows)
