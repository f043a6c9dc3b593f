"""The findings that open a report: the classes at both ends with intervals and significance,
pretraining against a random backbone as a difference with an interval (its coverage checked on
simulated baselines), the reliability and LDS in words, and what a counterfactual sweep achieved;
`report` and `diagnose` agree on the numbers and keep to their own folders."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from transfer_influence.analysis.baselines import accuracy_difference, mean_estimate
from transfer_influence.analysis.context import StudyContext
from transfer_influence.analysis.rankings import overall_influence
from transfer_influence.cli import main
from transfer_influence.evaluate.fdr import significant_classes
from transfer_influence.pipeline.run import run_study
from transfer_influence.report.build import build_report
from transfer_influence.report.findings import action_text
from transfer_influence.report.projection_tables import file_stem
from transfer_influence.study.config import parse_config
from transfer_influence.study.results import open_study

from .conftest import tiny_config_dict


def _simulated_coverage(trials: int, use_blocks: bool, seed: int = 0) -> float:
    """Share of 95% intervals of (subset models − random init) that hold the true difference.

    Subset models come in 20 blocks of 10 sharing a seed effect (sd 0.03, the partition design
    with one seed per block), plus their own noise (sd 0.01); 10 random-init runs have sd 0.005."""
    rng = np.random.default_rng(seed)
    blocks = np.repeat(np.arange(20), 10)
    truth = 0.76 - 0.75
    held = 0
    for _ in range(trials):
        subset = 0.76 + rng.normal(0, 0.03, 20)[blocks] + rng.normal(0, 0.01, blocks.size)
        random_init = 0.75 + rng.normal(0, 0.005, 10)
        gain = accuracy_difference("subset", subset, "random", random_init, blocks if use_blocks else None)
        low, high = gain.interval(0.95)
        held += low <= truth <= high
    return held / trials


def test_pretraining_difference_interval_covers_the_truth_on_simulated_baselines() -> None:
    """Cluster-robust over the design blocks with Welch degrees of freedom: 95% nominal, ~95% real
    over 2,000 simulated studies; treating the blocked models as independent covers far less."""
    assert 0.93 <= _simulated_coverage(2000, use_blocks=True) <= 0.97
    assert _simulated_coverage(500, use_blocks=False) < 0.7


def test_a_mean_over_equal_blocks_has_the_error_of_the_block_means() -> None:
    values = np.array([1.0, 1.2, 2.0, 2.4, 3.0, 3.1])
    blocks = np.array([0, 0, 1, 1, 2, 2])
    block_means = np.array([1.1, 2.2, 3.05])
    estimate = mean_estimate(values, blocks)
    assert estimate.stderr == pytest.approx(block_means.std(ddof=1) / math.sqrt(3))
    assert estimate.dof == 2


def test_a_single_baseline_run_gives_no_interval_never_a_zero_error() -> None:
    gain = accuracy_difference("subset", np.array([0.7, 0.72, 0.71]), "random", np.array([0.65]))
    low, high = gain.interval()
    assert math.isnan(low) and math.isnan(high) and gain.verdict() == "unmeasured"


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny study (10 models, 2 seeds of each baseline, so the difference has an interval)."""
    path = tmp_path_factory.mktemp("findings") / "study"
    run_study(parse_config(tiny_config_dict(num_models=10, **{"baselines.repeats": 2})), path, progress=False)
    return path


def test_findings_name_the_ends_of_the_ranking_with_intervals_and_significance(study: Path) -> None:
    report = build_report(StudyContext.open(study))
    findings = report.findings
    assert findings is not None
    results = open_study(study)
    overall = overall_influence(results, findings.output_kind, findings.estimator)
    order = np.argsort(-overall.values[:, 0], kind="stable")
    assert [c.name for c in findings.helpful] == [results.class_names[k] for k in order[:3]]
    assert [c.name for c in findings.harmful] == [results.class_names[k] for k in order[::-1][:3]]
    low, high = overall.interval(0.95)
    listed = {name for name, _, _ in significant_classes(overall, 0, 0.1, alternative="by-sign")}
    for c in findings.helpful + findings.harmful:
        k = results.class_names.index(c.name)
        assert (c.low, c.high) == pytest.approx((low[k, 0], high[k, 0]))
        assert c.significant == (c.name in listed)
    page = report.html_path.read_text()
    assert page.index("<h2>Findings</h2>") < page.index("Baselines: does pretraining matter?")
    assert f"{findings.helpful[0].influence:+.4f}" in page
    saved = json.loads((report.directory / "findings.json").read_text())
    assert [c["name"] for c in saved["helpful"]] == [c.name for c in findings.helpful]


def test_pretraining_finding_is_the_difference_with_its_welch_interval(study: Path) -> None:
    results = open_study(study)
    subset, random_init = results.target_accuracy, results.baselines["random_init"]
    a, b = subset.var(ddof=1) / subset.size, random_init.var(ddof=1) / random_init.size
    dof = (a + b) ** 2 / (a**2 / (subset.size - 1) + b**2 / (random_init.size - 1))
    diff = subset.mean() - random_init.mean()
    half = stats.t.ppf(0.975, dof) * math.sqrt(a + b)
    report = build_report(StudyContext.open(study), diagnostics=False, actions=False)
    text = dict(report.findings.items)["Does pretraining matter"]  # type: ignore[union-attr]
    assert f"{100 * diff:+.1f} points" in text
    assert f"95% CI [{100 * (diff - half):+.1f}, {100 * (diff + half):+.1f}] points" in text
    verdict = "beat an untrained one" if diff - half > 0 else ("do worse" if diff + half < 0 else "cannot tell")
    assert verdict in text


def test_reliability_and_lds_findings_quote_the_diagnostics(study: Path) -> None:
    report = build_report(StudyContext.open(study), actions=False)
    items = dict(report.findings.items)  # type: ignore[union-attr]
    diag = report.diagnostics
    assert diag is not None
    curves = diag.reliability[(report.findings.output_kind, report.findings.estimator)]  # type: ignore[union-attr]
    assert f"split-half Spearman of the overall ranking {curves['overall'].at_full_size:.2f}" in items["How reliable the ranking is"]
    lds = diag.lds[(report.findings.output_kind, report.findings.estimator)]["example"]  # type: ignore[union-attr]
    assert items["Predicting held-out models (LDS)"].startswith(f"{lds.mean:.2f}")


def test_report_and_diagnose_give_the_same_numbers_in_their_own_folders(study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diagnose", str(study)]) == 0
    printed = capsys.readouterr().out
    diagnose_file = study / "diagnose" / "diagnostics.json"
    diagnosed = diagnose_file.read_bytes()
    assert main(["report", str(study)]) == 0
    assert diagnose_file.read_bytes() == diagnosed  # the report wrote nothing of diagnose's
    reported_file = study / "report" / "diagnostics.json"
    reported = reported_file.read_bytes()
    assert json.loads(reported)["table"] == json.loads(diagnosed)["table"]
    assert json.loads(reported)["knockoffs"] == json.loads(diagnosed)["knockoffs"]
    assert main(["diagnose", str(study)]) == 0
    assert reported_file.read_bytes() == reported  # nor diagnose anything of the report's
    assert "LDS p_true/dim (per target example)" in printed and "LDS p_true/ridge (per target example)" in printed
    with open(study / "diagnose" / "diagnostics.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4 * 2 * 3 and all(r["lds"] != "" for r in rows)


def test_lds_is_the_held_out_spearman_on_the_same_split(study: Path) -> None:
    """Both fit on the same training models and rank the same held-out ones; they differ only where
    a target is constant over the held-out models (the LDS leaves it out, held-out scores it 0), which
    the 0/1 ``correct`` outputs can be: the continuous kinds must agree."""
    rows = json.loads((build_report(StudyContext.open(study), actions=False).directory / "diagnostics.json").read_text())["table"]
    compared = [r for r in rows if r["level"] != "example" and r["output_kind"] != "correct"]
    assert len(compared) == 3 * 2 * 2
    for row in compared:
        assert row["lds"] == pytest.approx(row["held_out_spearman"], abs=2e-4), row


def test_a_second_report_leaves_no_figure_of_the_first(study: Path) -> None:
    first = build_report(StudyContext.open(study, estimator="dim"))
    dim_projections = {p.name for p in first.directory.glob("projection_*.png")}
    second = build_report(StudyContext.open(study, estimator="ridge"))
    results = open_study(study)
    ridge = overall_influence(results, second.findings.output_kind, "ridge")  # type: ignore[union-attr]
    top = [results.class_names[k] for k in np.argsort(-ridge.values[:, 0], kind="stable")[:3]]
    assert {p.name for p in second.directory.glob("projection_*.png")} == {f"projection_{file_stem(c)}.png" for c in top}
    assert dim_projections  # the first report drew its own
    assert json.loads((second.directory / "findings.json").read_text())["estimator"] == "ridge"
    third = build_report(StudyContext.open(study), diagnostics=False, actions=False)
    left = {p.name for p in third.directory.iterdir()}
    assert not {"reliability.png", "diagnostics.json", "mistakes.png"} & left and not any(n.startswith("projection_") for n in left)


def test_action_finding_reads_the_sweep_header_and_says_how_to_run_one(tmp_path: Path) -> None:
    assert "no counterfactual sweep has run" in action_text(tmp_path / "none")
    sweep = tmp_path / "counterfactual"
    sweep.mkdir()
    (sweep / "recommended_source.txt").write_text("# full source: the chosen removal bottom-2 was not confirmed: +0.40 ± 0.50\nA\nB\n")
    assert action_text(sweep) == "full source: the chosen removal bottom-2 was not confirmed: +0.40 ± 0.50"


def test_action_finding_prefers_the_confirmed_recommendation(tmp_path: Path) -> None:
    from transfer_influence.analysis.recommendation import confirmed_recommendation, header_line, recommendation_json

    rec = confirmed_recommendation("bottom-2", "bottom", 2, (0, 1), np.array([0.01, 0.02, 0.015]), 6, [7, 8, 9],
                                   np.array([0.70, 0.71, 0.69]), np.array([0.72, 0.73, 0.70]))
    (tmp_path / "recommendation.json").write_text(recommendation_json(rec, ("A", "B", "C")))
    (tmp_path / "recommended_source.txt").write_text("# something else\n")
    assert action_text(tmp_path) == header_line(rec).lstrip("# ")
