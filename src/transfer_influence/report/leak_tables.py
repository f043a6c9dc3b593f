"""CSV table of leak candidates: (target image, source example) pairs ranked over the target set."""

from __future__ import annotations

import csv
from pathlib import Path

from ..analysis.leaks import LeakRanking

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
