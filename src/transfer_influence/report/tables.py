"""CSV tables of influences, baselines and diagnostics, and the diagnostics as printed text (no
matplotlib: the ``influence`` and ``diagnose`` commands use these)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from ..analysis.baselines import BaselineSummary
from ..analysis.convergence import Diagnostics
from ..analysis.rankings import StudyInfluence, ranked
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


def write_influence_tables(found: StudyInfluence, out: Path) -> Path:
    """The ``influence`` command's files in ``out`` (created here, after the estimate, so that a
    refused command leaves no folder): the overall and per-target-class rankings as CSV and the
    example influences and their errors as NPY, named by output kind and estimator."""
    out.mkdir(parents=True, exist_ok=True)
    suffix = found.suffix
    write_overall_csv(found.overall, out / f"overall_{suffix}.csv")
    write_per_target_csv(found.per_target_class, out / f"per_target_class_{suffix}.csv")
    np.save(out / f"example_values_{suffix}.npy", found.examples.values)
    np.save(out / f"example_stderr_{suffix}.npy", found.examples.stderr)
    return out


def save_diagnostics(diag: Diagnostics, out: Path) -> tuple[Path, Path]:
    """``diagnostics.json`` and ``diagnostics.csv`` in ``out``: what ``diagnose`` writes to its own
    folder and the report to its own, from the same call (so the two never overwrite each other)."""
    out.mkdir(parents=True, exist_ok=True)
    json_path, csv_path = out / "diagnostics.json", out / "diagnostics.csv"
    diag.save(json_path)
    write_diagnostics_csv(diag.table(), csv_path)
    return json_path, csv_path


def write_baselines_csv(summary: BaselineSummary, path: Path) -> None:
    with open(path, "w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["backbone", "target_accuracy_mean", "target_accuracy_std", "count"])
        for label, (mean, std, count) in summary.rows.items():
            out.writerow([label, f"{mean:.4f}", f"{std:.4f}", count])


def write_diagnostics_csv(rows: list[dict[str, object]], path: Path) -> None:
    """``Diagnostics.table()`` as CSV, one row per (output kind, estimator, level); an empty cell
    where a diagnostic was skipped (the notes in ``diagnostics.json`` say why)."""
    if not rows:
        path.write_text("")
        return
    with open(path, "w", newline="") as handle:
        out = csv.DictWriter(handle, fieldnames=list(rows[0]))
        out.writeheader()
        out.writerows([{k: ("" if v is None else v) for k, v in row.items()} for row in rows])


def _cell(value: object, width: int) -> str:
    return f"{'—':>{width}}" if value is None else f"{float(value):>{width}.3f}"  # type: ignore[arg-type]


def diagnostics_lines(diag: Diagnostics, rows: list[dict[str, object]], reliability: float) -> list[str]:
    """What ``diagnose`` prints: the table ('—' where a diagnostic was skipped), one LDS line per
    output kind and estimator, and a note for each diagnostic skipped on a study too small for it."""
    key = f"models_for_split_half_{reliability:g}"
    lines = [f"{'output':>15} {'estimator':>9} {'level':>13} {'split-half':>10} {'held-out':>9} {'LDS':>7} "
             f"{'models for ' + format(reliability, 'g'):>15}"]
    for r in rows:
        needed = "—" if r[key] is None else str(r[key])
        lines.append(f"{r['output_kind']:>15} {r['estimator']:>9} {r['level']:>13} {_cell(r['split_half_spearman'], 10)} "
                     f"{_cell(r['held_out_spearman'], 9)} {_cell(r['lds'], 7)} {needed:>15}")
    for (kind, est), scores in diag.lds.items():
        lds = scores.get("example")
        if lds is not None and math.isfinite(lds.mean):
            low, high = lds.interval(0.95)
            error = f" ± {lds.stderr:.3f} (95% CI [{low:.3f}, {high:.3f}])" if math.isfinite(lds.stderr) else ""
            lines.append(f"LDS {kind}/{est} (per target example): {lds.mean:.3f}{error}, fitted on "
                         f"{lds.num_train_models} models, scored on {lds.num_models} held-out ones")
    return lines + [f"note: {note}" for note in diag.notes]
