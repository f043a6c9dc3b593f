"""Measure: how TRAK class influences from M full-source models compare with a study's datamodel.

Runs a small study (the test suite's tiny one — 8 glyph classes → scikit-learn digits, 5 shots —
at ``--models`` subset models, α = 0.5), estimates class influences by ridge datamodels for the
``p_true`` and ``raw_margin`` outputs, and TRAK influences (``influence --estimator trak``'s
numbers) for each M in ``--gradient-models`` at ``--dims``. Printed: Spearman between TRAK and the
datamodel over the classes' overall influences (K values) and over class × target-class
influences (K·C values), beside the datamodel's own split-half Spearman (two halves of its models,
the same levels) as the reference of how well the datamodel agrees with itself.

    python bench/trak_vs_datamodel.py [--models 80] [--gradient-models 2,4,8] [--dims 128]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np
from scipy import stats

from _setup import ensure_malloc_tuning
from transfer_influence.analysis.gradient_influence import TrakSettings, trak_study_influence
from transfer_influence.estimate import estimate, group_means
from transfer_influence.pipeline.gradients import GradientRequest, study_gradients
from transfer_influence.pipeline.run import run_study
from transfer_influence.study.config import parse_config
from transfer_influence.study.results import StudyResults, open_study


def tiny_config(models: int) -> dict[str, object]:
    """The test suite's tiny study (tests/conftest.py) at ``models`` models and α = 0.5."""
    return {
        "name": "tiny", "seed": 24, "num_models": models,
        "source": {"components": [{"dataset": "glyphs", "options": {
            "classes": ["A", "B", "C", "D", "E", "F", "0", "1"], "images_per_class": 24, "max_fonts": 12}}],
            "holdout_per_class": 4},
        "target": {"dataset": {"dataset": "digits"}, "shots_per_class": 5, "test_size": 150},
        "model": {"channels": [8, 8, 8], "feature_dim": 32}, "train": {"epochs": 1, "batch_size": 64},
        "baselines": {"repeats": 0}, "execution": {"executor": "serial"},
    }


def datamodel(results: StudyResults, kind: str, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ridge overall (K) and class × target-class (K·C) influences from the models ``rows``."""
    outputs = np.asarray(results.outputs(kind), dtype=np.float64)[rows]
    masks = results.masks[rows]
    overall = estimate("ridge", masks, outputs.mean(axis=1, keepdims=True)).values[:, 0]
    grouped = group_means(outputs, results.target_labels, len(results.target_class_names))
    return overall, estimate("ridge", masks, grouped).values.ravel()


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    return float(stats.spearmanr(a, b).statistic)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=int, default=80)
    parser.add_argument("--gradient-models", default="2,4,8")
    parser.add_argument("--dims", type=int, default=128)
    args = parser.parse_args()
    with TemporaryDirectory() as folder:
        study = Path(folder) / "study"
        started = time.perf_counter()
        run_study(parse_config(tiny_config(args.models) | {"design": {"alpha": 0.5}}), study, progress=False)
        results = open_study(study)
        print(f"{results.num_models} subset models in {time.perf_counter() - started:.0f} s")
        everything = np.arange(results.num_models)
        halves = everything[::2], everything[1::2]
        for kind in ("p_true", "raw_margin"):
            first, second = datamodel(results, kind, halves[0]), datamodel(results, kind, halves[1])
            print(f"datamodel {kind} split-half Spearman: overall {spearman(first[0], second[0]):+.2f}, "
                  f"class x target-class {spearman(first[1], second[1]):+.2f}")
        references = {kind: datamodel(results, kind, everything) for kind in ("p_true", "raw_margin")}
        for count in (int(m) for m in args.gradient_models.split(",")):
            started = time.perf_counter()
            inputs = study_gradients(study, GradientRequest(count, args.dims))
            seconds = time.perf_counter() - started
            found = trak_study_influence(inputs, TrakSettings())
            overall, grouped = found.overall.values[:, 0], found.per_target_class.values.ravel()
            for kind, (ref_overall, ref_grouped) in references.items():
                print(f"trak M={count} d={args.dims} vs ridge {kind}: overall {spearman(overall, ref_overall):+.2f}, "
                      f"class x target-class {spearman(grouped, ref_grouped):+.2f} (gradients {seconds:.0f} s cumulative)")


if __name__ == "__main__":
    ensure_malloc_tuning()
    main()
