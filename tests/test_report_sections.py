"""The report's sections on acting on the influences, on tiny studies: the counterfactual table and
the what-if comparison against numbers computed straight from the retrain files, the projected
classes and explained images against a direct ranking, and a clear line in place of each section
whose inputs the study lacks."""

from __future__ import annotations

import csv
import html
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from transfer_influence.analysis.context import StudyContext
from transfer_influence.analysis.counterfactual import SWEEP_DIR, split_targets
from transfer_influence.analysis.rankings import overall_influence
from transfer_influence.analysis.whatif import compare_with_sweep, what_if_removed
from transfer_influence.cli import main
from transfer_influence.errors import InputError
from transfer_influence.pipeline.run import run_study
from transfer_influence.report.build import build_report
from transfer_influence.study.config import parse_config
from transfer_influence.study.results import open_study

from .conftest import tiny_config_dict

SWEEP_ARGS = ["--k", "1,2", "--repeats", "3", "--serial", "--quiet"]  # 3: the fewest seeds a sweep takes
NO_SWEEP_LINE = "transfer-influence counterfactual STUDY_DIR"


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny study with two all-source baselines and a counterfactual sweep (k = 1, 2; 3 seeds)."""
    path = tmp_path_factory.mktemp("sections") / "study"
    run_study(parse_config(tiny_config_dict(num_models=10, **{"baselines.repeats": 2})), path, progress=False)
    assert main(["counterfactual", str(path), *SWEEP_ARGS]) == 0
    return path


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny study of 4 models, no baselines and no sweep."""
    path = tmp_path_factory.mktemp("sections-bare") / "study"
    run_study(parse_config(tiny_config_dict(num_models=4, **{"baselines.repeats": 0})), path, progress=False)
    return path


def _retrain_accuracy(study: Path) -> dict[tuple[int, ...], list[float]]:
    """Scoring-half accuracy of every retrain file on the sweep's selection seeds (not the fresh
    seeds that confirm its recommendation), keyed by the classes its mask leaves out."""
    with np.load(study / "data.npz") as archive:
        labels = archive["target_test__labels"]
    scoring = ~split_targets(labels, open_study(study).config.seed)
    seeds = set(json.loads((study / SWEEP_DIR / "removed.json").read_text())["seeds"])
    found: dict[tuple[int, ...], list[float]] = {}
    for path in sorted((study / SWEEP_DIR / "runs").glob("*.npz")):
        with np.load(path) as archive:
            if json.loads(str(archive["record"]))["seed"] not in seeds:
                continue
            removed = tuple(int(c) for c in np.flatnonzero(~archive["mask"].astype(bool)))
            found.setdefault(removed, []).append(float(archive["output__correct"][scoring].mean()))
    return found


def test_whatif_comparison_equals_a_direct_computation(swept: Path) -> None:
    results = open_study(swept)
    comparison = compare_with_sweep(results, swept / SWEEP_DIR)
    accuracy = _retrain_accuracy(swept)
    full = np.mean(accuracy[()])
    arms = json.loads((swept / SWEEP_DIR / "removed.json").read_text())["arms"]
    named = [a for a in arms if a["selection"] not in ("full", "random") and a["removed"]]
    assert [(p.selection, p.k) for p in comparison.points] == [(a["selection"], a["k"]) for a in named]
    measured, predicted = [], []
    scoring = np.flatnonzero(~split_targets(results.target_labels, results.config.seed))  # both sides on these images
    for arm, point in zip(named, comparison.points):
        removed = tuple(sorted(results.class_names.index(c) for c in arm["removed"]))
        prediction = what_if_removed(results, arm["removed"], columns=scoring)
        measured.append(np.mean(accuracy[removed]) - full)
        predicted.append(prediction.predicted[0] - prediction.full_accuracy[0])
        assert point.measured == pytest.approx(measured[-1], abs=1e-6)
        assert point.predicted == pytest.approx(predicted[-1], abs=1e-12)
        assert point.predicted_stderr == pytest.approx(prediction.predicted_stderr[0])
    assert len(named) >= 4  # top and bottom for k = 1 and 2
    assert comparison.spearman == pytest.approx(stats.spearmanr(measured, predicted)[0])
    assert comparison.mean_absolute_error == pytest.approx(np.mean(np.abs(np.subtract(predicted, measured))), abs=1e-6)


def test_report_holds_every_section_with_the_sweep(swept: Path) -> None:
    report = build_report(StudyContext.open(swept), diagnostics=False)
    page = report.html_path.read_text()
    for title in ("Counterfactual removal", "What-if predictions against retraining", "Projection:", "Mistakes:"):
        assert title in page
    assert NO_SWEEP_LINE not in page
    comparison = report.actions.whatif
    assert comparison is not None
    assert f"Spearman correlation over {len(comparison.points)} arms: {comparison.spearman:.2f}" in page
    assert f"mean absolute error: {comparison.mean_absolute_error:.4f}" in page
    with open(swept / SWEEP_DIR / "summary.csv") as handle:
        rows = list(csv.DictReader(handle))
    bottom = next(r for r in rows if r["selection"] == "bottom" and r["k"] == "2")
    assert f"{float(bottom['diff_vs_full']):+.4f} ± {float(bottom['diff_se']):.4f}" in page
    assert "Recommended source:" in page
    for name in ("whatif_vs_sweep.png", "mistakes.png"):
        assert (report.directory / name).stat().st_size > 1000
    # overall, per target class, baselines, sweep, what-if, 3 projections, mistakes
    assert page.count("data:image/png;base64,") == 9


def test_projected_classes_and_explained_images_follow_the_study(swept: Path) -> None:
    report = build_report(StudyContext.open(swept), diagnostics=False)
    results = open_study(swept)
    kind, estimator = results.config.analysis.output_kind, results.config.analysis.estimator
    overall = overall_influence(results, kind, estimator).values[:, 0]
    expected = [results.class_names[k] for k in np.argsort(-overall, kind="stable")[:3]]
    assert [p.source_class for p, _, _ in report.actions.projections] == expected
    correct = np.asarray(results.outputs("correct"), dtype=np.float64).mean(axis=0)
    p_true = np.asarray(results.outputs("p_true"), dtype=np.float64).mean(axis=0)
    worst = np.lexsort((p_true, correct))[:3]
    explained = [e.target_id for e in report.actions.explanations]
    assert explained == [str(results.target_ids[j]) for j in worst]
    page = report.html_path.read_text()
    for target_id in explained:
        assert html.escape(target_id) in page


def test_report_without_sweep_or_baselines_says_what_is_missing(bare: Path) -> None:
    report = build_report(StudyContext.open(bare), diagnostics=False)
    page = report.html_path.read_text()
    assert "No removal sweep yet" in page and NO_SWEEP_LINE in page
    assert "Needs the retrains of a counterfactual sweep" in page
    assert "Projection:" in page and "Mistakes:" in page and len(report.actions.projections) == 3
    assert not (bare / SWEEP_DIR).exists()  # the report never retrains


def test_sweep_without_baseline_names_the_missing_baseline(swept: Path, bare: Path, tmp_path: Path) -> None:
    study = tmp_path / "study"
    shutil.copytree(bare, study)
    (study / SWEEP_DIR).mkdir()
    for name in ("summary.csv", "removed.json"):
        shutil.copy(swept / SWEEP_DIR / name, study / SWEEP_DIR / name)
    with pytest.raises(InputError, match="all-source baseline"):
        compare_with_sweep(open_study(study), study / SWEEP_DIR)
    report = build_report(StudyContext.open(study), diagnostics=False)
    page = report.html_path.read_text()
    assert "No what-if comparison" in page and "all-source baseline" in page
    assert "Counterfactual removal" in page and "counterfactual.png</code> is missing" in page


def test_report_can_leave_the_action_sections_out(bare: Path) -> None:
    report = build_report(StudyContext.open(bare), diagnostics=False, actions=False)
    page = report.html_path.read_text()
    assert report.actions is None and "Counterfactual removal" not in page and "Mistakes:" not in page


def test_rankings_compared_section_appears_with_a_second_ranking(swept: Path, tmp_path: Path) -> None:
    """One sweep: no comparison; a ranking from another study added: its paired rows in the page."""
    assert "Rankings compared" not in build_report(StudyContext.open(swept), diagnostics=False).html_path.read_text()
    other = tmp_path / "other"
    run_study(parse_config(tiny_config_dict(seed=3, num_models=8, **{"baselines.repeats": 0})), other, progress=False)
    assert main(["counterfactual", str(swept), *SWEEP_ARGS, "--ranking-from", str(other)]) == 0
    report = build_report(StudyContext.open(swept), diagnostics=False)
    page = report.html_path.read_text()
    assert "Rankings compared" in page and "from-other" in page
    rows = report.actions.rankings_compared
    assert {r["ranking"] for r in rows} == {"own", "from-other"}
    top = next(r for r in rows if r["ranking"] == "from-other" and r["selection"] == "top" and r["k"] == 2)
    assert f"{float(top['random_minus_top']):+.4f} ± {float(top['random_minus_top_se']):.4f}" in page
