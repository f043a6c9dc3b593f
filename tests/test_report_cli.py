"""Report, CLI commands and the transfer head on a tiny real study."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from transfer_influence.analysis.context import StudyContext
from transfer_influence.analysis.lookalikes import lookalike_check
from transfer_influence.analysis.rankings import overall_influence, per_target_class_influence
from transfer_influence.estimate import group_means
from transfer_influence.cli import main as cli_main
from transfer_influence.estimate import class_influence
from transfer_influence.study.outputs import output_kinds_from_logits
from transfer_influence.study.results import open_study
from transfer_influence.pipeline.run import run_study
from transfer_influence.train.transfer import LinearHead

from .conftest import tiny_config_dict, write_config


@pytest.fixture(scope="module")
def finished_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transfer_influence.study.config import parse_config

    study = tmp_path_factory.mktemp("report") / "study"
    run_study(parse_config(tiny_config_dict(num_models=10)), study, progress=False)
    return study


def test_group_influence_equals_mean_of_example_influences(finished_study: Path) -> None:
    results = open_study(finished_study)
    per_class = per_target_class_influence(results)
    examples = class_influence(results.masks, results.outputs("p_true"))
    for c in range(len(results.target_class_names)):
        members = results.target_labels == c
        np.testing.assert_allclose(per_class.values[:, c], examples.values[:, members].mean(axis=1), atol=1e-5)
    overall = overall_influence(results)
    np.testing.assert_allclose(overall.values[:, 0], examples.values.mean(axis=1), atol=1e-5)


def test_group_means_rejects_empty_groups() -> None:
    with pytest.raises(ValueError, match="no examples"):
        group_means(np.ones((3, 2)), np.array([0, 0]), 2)


def test_report_writes_figures_tables_and_page(finished_study: Path, capsys) -> None:
    assert cli_main(["report", str(finished_study)]) == 0
    out = finished_study / "report"
    for name in ("overall_influence.png", "per_target_class.png", "baselines.png", "report.html"):
        assert (out / name).stat().st_size > 1000, name
    with open(out / "overall_influence.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["source_class"] for r in rows] != [] and len(rows) == 8
    values = [float(r["influence"]) for r in rows]
    assert values == sorted(values, reverse=True)
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 9  # 5 study figures + 3 projection grids + mistakes
    assert (out / "diagnostics.json").exists() and "split-half Spearman" in page
    assert "random-init backbone" in page and "α = 0.5" in page
    assert "report.html" in capsys.readouterr().out


def test_influence_command_prints_ranking_and_writes_tables(finished_study: Path, capsys) -> None:
    assert cli_main(["influence", str(finished_study), "--kind", "raw_margin", "--top", "2"]) == 0
    printed = capsys.readouterr().out
    assert "most positive overall influence" in printed and "10 models" in printed
    assert np.load(finished_study / "influence" / "example_values_raw_margin_dim.npy").shape == (8, 150)


def test_cli_errors_are_one_clear_line(tmp_path: Path, capsys) -> None:
    assert cli_main(["influence", str(tmp_path / "nothing")]) == 2
    assert "not a study directory" in capsys.readouterr().err
    bad = write_config(tmp_path / "bad.yaml", tiny_config_dict(**{"design.kind": "sobol"}))
    assert cli_main(["run", str(bad), "--out", str(tmp_path / "s")]) == 2
    assert "design.kind" in capsys.readouterr().err
    missing = write_config(
        tmp_path / "missing.yaml",
        tiny_config_dict(**{"source.components": [{"dataset": "fashion_mnist", "options": {"root": str(tmp_path / "none")}}]}),
    )
    assert cli_main(["run", str(missing), "--out", str(tmp_path / "s2")]) == 2
    assert "apt-get install dataset-fashion-mnist" in capsys.readouterr().err


def test_demo_command_with_a_small_config(tmp_path: Path, capsys) -> None:
    cfg = write_config(tmp_path / "demo.yaml", tiny_config_dict(num_models=4, **{"design.kind": "complement"}))
    assert cli_main(["demo", "--config", str(cfg), "--out", str(tmp_path / "demo"), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "random-init backbone" in printed and "report:" in printed and "time: data" in printed
    findings = json.loads((tmp_path / "demo" / "report" / "findings.json").read_text())
    top = findings["helpful"][0]["name"]
    assert "findings:" in printed and f"Most helpful source classes: '{top}'" in printed
    assert "Does pretraining matter: subset models minus random init" in printed


def test_lookalike_check_counts_matching_glyphs() -> None:
    from transfer_influence.estimate import InfluenceEstimate

    values = np.zeros((3, 2), dtype=np.float32)
    values[:, 0] = [0.3, 0.2, -0.1]  # digit 0: 'O' ranks first
    values[:, 1] = [0.3, -0.2, 0.1]  # digit 1: 'l' ranks second of three
    infl = InfluenceEstimate(values, np.ones_like(values), np.ones(3), np.ones(3), ("O", "x", "l"), ("0", "1"), dof=1.0)
    check = lookalike_check(infl, top_k=1)
    assert check is not None and check.hits == {"0": ["O"], "1": []} and check.num_hits == 1


def test_linear_head_fits_and_outputs_are_consistent() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 5)) * 4
    labels = np.repeat(np.arange(3), 20)
    features = centres[labels] + rng.normal(size=(60, 5))
    head = LinearHead(l2=0.01, max_iter=200).fit(features, labels, 3)
    assert (head.logits(features).argmax(1) == labels).mean() > 0.95
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0]])
    out = output_kinds_from_logits(logits, np.array([0, 0]))
    np.testing.assert_allclose(out["raw_margin"], [1.0, -3.0])
    np.testing.assert_allclose(out["correct"], [1.0, 0.0])
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    np.testing.assert_allclose(out["p_true"], p[:, 0], rtol=1e-6)
    np.testing.assert_allclose(out["softmax_margin"], [p[0, 0] - p[0, 1], p[1, 0] - p[1, 1]], rtol=1e-6)


def test_plan_runs_pilots_and_recommends(tmp_path: Path, capsys) -> None:
    cfg = write_config(tmp_path / "c.yaml", tiny_config_dict())
    code = cli_main(["plan", str(cfg), "--out", str(tmp_path / "pilots"), "--alphas", "0.5,0.25",
                     "--pilot-seconds", "4", "--budget-minutes", "1"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "recommended: alpha" in printed and "what it measures" in printed
    assert (tmp_path / "pilots" / "pilot-alpha-0.25" / "study.json").exists()
    assert "partition" in printed  # 1/0.25 is whole: the balanced design is piloted


def test_report_with_the_ridge_estimator(finished_study: Path) -> None:
    from transfer_influence.report.build import build_report

    report = build_report(StudyContext.open(finished_study, estimator="ridge"), diagnostics=False)
    assert report.overall.estimator == "ridge" and report.per_target_class.values.shape == (8, 10)
    page = report.html_path.read_text()
    assert "estimator: ridge regression on the mask" in page


def test_simulator_calibrated_on_a_real_study(finished_study: Path) -> None:
    from transfer_influence.evaluate.simulate import StudySimulator

    results = open_study(finished_study)
    sim = StudySimulator.from_study(results)
    assert sim.spec.num_classes == 8 and sim.spec.num_target_classes == 10
    assert sim.spec.model_class_noise > 0 and sim.spec.example_noise > 0 and 0 < sim.spec.base < 1
    outputs = sim.outputs(results.masks, seed=0)
    assert outputs.shape == (results.num_models, sim.num_targets)
    assert sim.true_influence(0.5, "target_class").shape == (8, 10)
