"""`leaks`: the source examples with the most positive and most negative datamodel coefficient on
each target image of an example-level study, ranked over the whole target set (paper Figure 7)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import tiny_config_dict
from transfer_influence.analysis.leaks import example_coefficients, rank_leak_pairs, require_example_units, study_leaks
from transfer_influence.analysis.rankings import example_influence
from transfer_influence.cli import EXIT_USAGE, main
from transfer_influence.errors import InputError
from transfer_influence.estimate.lasso import lasso_datamodel
from transfer_influence.pipeline.run import run_study
from transfer_influence.report.leak_tables import LEAK_COLUMNS
from transfer_influence.study.config import parse_config
from transfer_influence.study.results import open_study
from transfer_influence.study.store import StudyStore

MODELS, SOURCES, TARGETS = 240, 40, 6
LEAKED_TARGET, LEAK = 2, 17
"""Source example 17 is a copy of target image 2: models that saw it get that image right."""
MISLED_TARGET, MISLABELED = 4, 5
"""Source example 5 teaches the wrong class for target image 4's look: it lowers that image's output."""


def planted_study() -> tuple[np.ndarray, np.ndarray]:
    """Random half-subsets of 40 source examples and outputs with one planted leak and one planted
    mislabel on top of noise and weak effects of every example."""
    rng = np.random.default_rng(7)
    masks = rng.random((MODELS, SOURCES)) < 0.5
    weak = rng.normal(0.0, 0.01, size=(SOURCES, TARGETS))
    outputs = 0.5 + masks @ weak + rng.normal(0.0, 0.05, size=(MODELS, TARGETS))
    outputs[:, LEAKED_TARGET] += 0.4 * masks[:, LEAK]
    outputs[:, MISLED_TARGET] -= 0.3 * masks[:, MISLABELED]
    return masks, outputs.astype(np.float32)


SOURCE_IDS = tuple(f"src{k:03d}" for k in range(SOURCES))
SOURCE_LABELS = np.arange(SOURCES) % 4
TARGET_IDS = tuple(f"tgt{j}" for j in range(TARGETS))
TARGET_LABELS = np.arange(TARGETS) % 3


def ranking_of(coefficients: np.ndarray, per_target: int = 3):  # type: ignore[no-untyped-def]
    return rank_leak_pairs(coefficients, SOURCE_IDS, SOURCE_LABELS, ("a", "b", "c", "d"), TARGET_IDS, TARGET_LABELS,
                           ("zero", "one", "two"), per_target)


@pytest.mark.parametrize("estimator", ["lasso", "ridge", "dim"])
def test_planted_leak_and_mislabel_are_found_first(estimator: str) -> None:
    masks, outputs = planted_study()
    ranking = ranking_of(example_coefficients(masks, outputs, estimator))
    top = ranking.positive[0]
    assert (top.target_id, top.source_id, top.rank) == (TARGET_IDS[LEAKED_TARGET], SOURCE_IDS[LEAK], 1)
    assert top.source_class == "b" and top.target_label == "two" and top.coefficient > 0.3
    assert ranking.for_target(TARGET_IDS[LEAKED_TARGET])[0].source_id == SOURCE_IDS[LEAK]
    worst = ranking.negative[0]
    assert (worst.target_id, worst.source_id, worst.rank) == (TARGET_IDS[MISLED_TARGET], SOURCE_IDS[MISLABELED], 1)
    assert worst.coefficient < -0.2
    assert ranking.for_target(TARGET_IDS[MISLED_TARGET], "negative")[0].source_id == SOURCE_IDS[MISLABELED]


def test_ranking_is_the_estimators_coefficients_sorted_over_all_targets() -> None:
    masks, outputs = planted_study()
    values = np.asarray(lasso_datamodel(masks, outputs).values, dtype=np.float64)
    np.testing.assert_array_equal(example_coefficients(masks, outputs, "lasso"), values)
    per_target = 4
    ranking = ranking_of(values, per_target)
    expected_positive, expected_negative = [], []
    for j in range(TARGETS):
        column = values[:, j]
        order = sorted(range(SOURCES), key=lambda k: -column[k])[:per_target]
        expected_positive += [(column[k], j, k) for k in order if column[k] > 0]
        order = sorted(range(SOURCES), key=lambda k: column[k])[:per_target]
        expected_negative += [(column[k], j, k) for k in order if column[k] < 0]
    expected_positive.sort(key=lambda t: (-t[0], t[1], t[2]))
    expected_negative.sort(key=lambda t: (t[0], t[1], t[2]))
    for pairs, expected in ((ranking.positive, expected_positive), (ranking.negative, expected_negative)):
        assert [(p.target_index, p.source_index) for p in pairs] == [(j, k) for _, j, k in expected]
        assert [p.coefficient for p in pairs] == [c for c, _, _ in expected]
        assert [p.rank for p in pairs] == list(range(1, len(expected) + 1))
    assert 0 < len(ranking.positive) <= per_target * TARGETS
    # LASSO zeros are no evidence: none is listed, and a target with no non-zero coefficient lists nothing
    assert all(p.coefficient != 0 for p in ranking.pairs())
    silent = ranking_of(np.where(np.arange(TARGETS) == 0, 0.0, values))
    assert not silent.for_target(TARGET_IDS[0]) and not silent.for_target(TARGET_IDS[0], "negative")


def test_bad_arguments_are_refused() -> None:
    masks, outputs = planted_study()
    with pytest.raises(InputError, match="unknown estimator 'ols'"):
        example_coefficients(masks, outputs, "ols")
    with pytest.raises(InputError, match="positive integer"):
        ranking_of(np.zeros((SOURCES, TARGETS)), per_target=0)
    with pytest.raises(InputError, match="coefficient rows"):
        ranking_of(np.zeros((SOURCES + 1, TARGETS)))


# --------------------------------------------------------------------------------------------
# a real example-level study, end to end through the command line


def example_config(models: int):  # type: ignore[no-untyped-def]
    return parse_config(tiny_config_dict(**{
        "source.components": [
            {"dataset": "glyphs", "options": {"classes": ["A", "B", "C", "D", "E", "F", "0", "1"],
                                              "images_per_class": 8, "max_fonts": 12}}
        ],
        "design.unit": "example",
        "num_models": models,
        "baselines.repeats": 0,
        "target.test_size": 60,
    }))


@pytest.fixture(scope="module")
def example_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    study = tmp_path_factory.mktemp("leaks") / "study"
    run_study(example_config(40), study, progress=False, stream=io.StringIO())
    return study


def test_cli_writes_the_ranked_pairs_and_their_figure(example_study: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["leaks", str(example_study), "--top", "4", "--kind", "p_true"]) == 0
    printed = capsys.readouterr().out
    assert "estimator lasso" in printed and "candidate leaks" in printed
    with open(example_study / "leaks" / "pairs.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0].keys()) == LEAK_COLUMNS
    assert (example_study / "leaks" / "pairs.png").stat().st_size > 0
    results = open_study(example_study)
    ranking = study_leaks(results, "p_true", "lasso", seed=results.config.seed)
    assert [(r["target_id"], r["source_id"], r["sign"], int(r["rank"])) for r in rows] == [
        (p.target_id, p.source_id, p.sign, p.rank) for p in ranking.pairs()
    ]
    assert set(results.unit_names) >= {r["source_id"] for r in rows}
    assert {r["source_class"] for r in rows} <= set(results.source_class_names)


def test_cli_dim_pairs_follow_the_example_influences(example_study: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["leaks", str(example_study), "--estimator", "dim", "--kind", "p_true", "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    with open(tmp_path / "pairs.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    results = open_study(example_study)
    values = example_influence(results, "p_true", "dim").values
    k, j = np.unravel_index(np.argmax(values), values.shape)
    first = rows[0]
    assert (first["sign"], first["rank"]) == ("positive", "1")
    assert (first["target_id"], first["source_id"]) == (str(results.target_ids[j]), results.unit_names[k])
    k, j = np.unravel_index(np.argmin(values), values.shape)
    first_negative = next(r for r in rows if r["sign"] == "negative")
    assert (first_negative["target_id"], first_negative["source_id"]) == (str(results.target_ids[j]), results.unit_names[k])


def test_a_class_level_study_is_refused_before_any_work(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    study = tmp_path / "class-study"
    StudyStore.create_or_open(study, parse_config(tiny_config_dict()), {}, {}, {})
    before = sorted(p.name for p in study.iterdir())
    assert main(["leaks", str(study)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "class-level study" in err and "design.unit: example" in err
    assert sorted(p.name for p in study.iterdir()) == before


def test_the_analysis_refuses_class_units_too(example_study: Path) -> None:
    results = open_study(example_study)
    require_example_units(results)
    results.unit_kind = "class"
    with pytest.raises(InputError, match=r"class-level study.*design.unit: example"):
        study_leaks(results, "p_true")


def test_library_calls_on_a_class_study_are_refused_before_any_work(tmp_path: Path) -> None:
    """The leak entry functions and the leak report pair single source examples: on a class-level
    study (no runs here, so anything read would fail otherwise) the context refuses each before
    results are read or a folder is made."""
    from transfer_influence.analysis.context import StudyContext
    from transfer_influence.analysis.planted import curve_request, study_leak_findings, study_planted_curve
    from transfer_influence.report.leak_report import build_leak_report

    study = tmp_path / "class-study"
    StudyStore.create_or_open(study, parse_config(tiny_config_dict()), {}, {}, {})
    before = sorted(p.name for p in study.iterdir())
    context = StudyContext.open(study, estimator="ridge")
    for call in (lambda: study_leak_findings(context), lambda: study_planted_curve(context),
                 lambda: curve_request(context), lambda: build_leak_report(context)):
        with pytest.raises(InputError, match=r"is a class-level study .* single source examples"):
            call()
    assert sorted(p.name for p in study.iterdir()) == before and context._results is None


def test_leak_findings_of_a_context_are_the_ranked_study_coefficients(example_study: Path) -> None:
    from transfer_influence.analysis.context import StudyContext
    from transfer_influence.analysis.planted import study_leak_findings

    context = StudyContext.open(example_study, kind="p_true", estimator="dim", estimators=("lasso", "ridge", "dim"))
    findings = study_leak_findings(context, per_target=2)
    results = open_study(example_study)
    np.testing.assert_array_equal(findings.coefficients, example_influence(results, "p_true", "dim").values)
    assert findings.ranking == study_leaks(results, "p_true", "dim", 2, seed=results.config.seed)
    assert findings.planted is None  # nothing planted in this study's source
