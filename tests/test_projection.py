"""Projection (paper §4.1) and explained mistakes (§4.2): checked against a direct computation of
the influences from a tiny study's masks and outputs, through the functions and the CLI."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from transfer_influence.analysis.debugging import explain_targets, most_mispredicted
from transfer_influence.analysis.projection import project_source_class, project_target_class
from transfer_influence.analysis.rankings import example_influence
from transfer_influence.cli import EXIT_USAGE, main
from transfer_influence.errors import InputError
from transfer_influence.estimate import InfluenceEstimate, class_influence
from transfer_influence.pipeline.run import run_study
from transfer_influence.study.config import parse_config
from transfer_influence.study.results import StudyResults, open_study

from .conftest import tiny_config_dict


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("projection") / "study"
    run_study(parse_config(tiny_config_dict(num_models=10, **{"baselines.repeats": 0})), path, progress=False)
    return path


@pytest.fixture(scope="module")
def results(study: Path) -> StudyResults:
    return open_study(study)


@pytest.fixture(scope="module")
def direct(results: StudyResults) -> np.ndarray:
    """K × n difference-of-means influences on p_true, computed straight from masks and outputs."""
    return class_influence(results.masks, np.asarray(results.outputs("p_true"))).values


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_source_projection_is_the_argsort_of_the_class_row(results: StudyResults, direct: np.ndarray) -> None:
    row = results.class_names.index("A")
    influence = example_influence(results, "p_true", "dim")
    projection = project_source_class(influence, results.target_labels, results.target_class_names, "A", top=6)
    expected_top = results.target_ids[np.argsort(-direct[row])[:6]].tolist()
    expected_bottom = results.target_ids[np.argsort(direct[row])[:6]].tolist()
    assert [t.target_id for t in projection.most_positive] == expected_top
    assert [t.target_id for t in projection.most_negative] == expected_bottom
    for entry in projection.most_positive + projection.most_negative:
        assert entry.influence == pytest.approx(direct[row, entry.index], abs=1e-5)
        assert entry.true_label == results.target_class_names[results.target_labels[entry.index]]
    assert projection.most_positive[0].influence > 0 > projection.most_negative[0].influence


def test_target_projection_groups_images_by_the_argmax_class(results: StudyResults, direct: np.ndarray) -> None:
    influence = example_influence(results, "p_true", "dim")
    label = results.target_class_names.index("3")
    grouping = project_target_class(influence, results.target_labels, results.target_class_names, "3")
    columns = np.flatnonzero(results.target_labels == label)
    best = np.argmax(direct[:, columns], axis=0)
    positive = direct[best, columns] > 0
    expected = {
        str(results.target_ids[j]): results.class_names[k] for j, k, keep in zip(columns, best, positive) if keep
    }
    found = {entry.target_id: group.source_class for group in grouping.groups for entry in group.members}
    assert found == expected
    assert {e.target_id for e in grouping.unclaimed} == {str(results.target_ids[j]) for j in columns[~positive]}
    sizes = [len(g.members) for g in grouping.groups]
    assert sizes == sorted(sizes, reverse=True) and sum(sizes) + len(grouping.unclaimed) == columns.size


def test_images_no_class_helps_are_left_unclaimed() -> None:
    values = np.array([[0.3, -0.1, 0.2, 0.5], [0.1, -0.2, 0.4, 0.0]])  # 2 classes × 4 images
    influence = InfluenceEstimate(
        values=values, stderr=np.full_like(values, 0.05), n_in=np.array([5, 5]), n_out=np.array([5, 5]),
        unit_names=("P", "Q"), target_ids=("a", "b", "c", "d"), dof=8.0,
    )
    grouping = project_target_class(influence, np.array([0, 0, 0, 1]), ("even", "odd"), "even")
    assert [(g.source_class, [e.target_id for e in g.members]) for g in grouping.groups] == [("P", ["a"]), ("Q", ["c"])]
    assert [(e.target_id, e.influence) for e in grouping.unclaimed] == [("b", -0.1)]


def test_explain_lists_the_most_negative_classes_and_direct_with_without_means(
    results: StudyResults, direct: np.ndarray
) -> None:
    correct = np.asarray(results.outputs("correct"), dtype=np.float64)
    p_true = np.asarray(results.outputs("p_true"), dtype=np.float64)
    accuracy, mean_p_true = correct.mean(axis=0), p_true.mean(axis=0)
    order = most_mispredicted(results, accuracy.size)  # least often right first, ties by lower mean p_true
    assert np.all(np.diff(accuracy[order]) >= 0)
    ties = np.diff(accuracy[order]) == 0
    assert np.all(np.diff(mean_p_true[order])[ties] >= 0)
    assert most_mispredicted(results, 3).tolist() == order[:3].tolist()
    j = int(np.argsort(direct.min(axis=0))[0])  # an image with a strongly negative class
    (explanation,) = explain_targets(results, [j], "p_true", "dim", top=3)
    order = np.argsort(direct[:, j])[:3]
    assert [s.name for s in explanation.suspects] == [results.class_names[k] for k in order if direct[k, j] < 0]
    assert explanation.accuracy == pytest.approx(accuracy[j])
    for suspect in explanation.suspects:
        held = results.masks[:, suspect.index]
        assert suspect.influence == pytest.approx(direct[suspect.index, j], abs=1e-5)
        assert suspect.ci95_low < suspect.influence < suspect.ci95_high
        assert suspect.p_true_with == pytest.approx(p_true[held, j].mean())
        assert suspect.p_true_without == pytest.approx(p_true[~held, j].mean())
        assert suspect.accuracy_with == pytest.approx(correct[held, j].mean())
        assert suspect.accuracy_without == pytest.approx(correct[~held, j].mean())
        # Difference of means: the influence is the with − without gap of the output it was estimated on.
        assert suspect.influence == pytest.approx(suspect.p_true_with - suspect.p_true_without, abs=1e-5)


def test_commands_write_figures_and_tables(study: Path, results: StudyResults, direct: np.ndarray, tmp_path: Path) -> None:
    assert main(["project", str(study), "--source-class", "B", "--top", "4", "--estimator", "dim"]) == 0
    rows = _read_csv(study / "projection" / "source_B_p_true_dim.csv")
    row = results.class_names.index("B")
    top = [r["target_id"] for r in rows if r["end"] == "most_positive"]
    assert top == results.target_ids[np.argsort(-direct[row])[:4]].tolist()
    assert (study / "projection" / "source_B_p_true_dim.png").stat().st_size > 0

    assert main(["project", str(study), "--target-class", "7", "--out", str(tmp_path)]) == 0
    rows = _read_csv(tmp_path / "target_7_p_true_dim.csv")
    assert len(rows) == int((results.target_labels == results.target_class_names.index("7")).sum())
    assert (tmp_path / "target_7_p_true_dim.png").exists()

    target = str(results.target_ids[0])
    assert main(["explain", str(study), "--image", target, "--top", "2"]) == 0
    rows = _read_csv(study / "explain" / f"targets_{target.replace('/', '_')}_p_true_dim.csv")
    assert {r["target_id"] for r in rows} <= {target} and len(rows) <= 2
    assert main(["explain", str(study), "--count", "2"]) == 0
    rows = _read_csv(study / "explain" / "most_mispredicted_p_true_dim.csv")
    assert len({r["target_id"] for r in rows}) <= 2
    assert (study / "explain" / "most_mispredicted_p_true_dim.png").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["project", "{study}", "--source-class", "Q"], "unknown source class 'Q'"),
        (["project", "{study}", "--target-class", "eleven"], "unknown target class 'eleven'"),
        (["project", "{study}", "--source-class", "A", "--top", "0"], "--top must be at least 1"),
        (["explain", "{study}", "--image", "digits/99999"], "unknown target id 'digits/99999'"),
        (["explain", "{study}", "--top", "0"], "--top must be at least 1"),
        (["explain", "{study}", "--count", "0"], "--count must be at least 1"),
        (["explain", "{study}", "--kind", "logits"], "unknown output kind 'logits'"),
    ],
)
def test_bad_input_is_refused_with_one_message(study: Path, argv: list[str], message: str, capsys) -> None:
    assert main([a.format(study=study) for a in argv]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_unknown_source_class_error_lists_valid_names(results: StudyResults) -> None:
    influence = example_influence(results, "p_true", "dim")
    with pytest.raises(InputError, match="'A', 'B'"):
        project_source_class(influence, results.target_labels, results.target_class_names, "a")


def test_a_study_with_too_few_finished_runs_is_refused(tmp_path: Path, capsys) -> None:
    small = tmp_path / "small"
    run_study(parse_config(tiny_config_dict(num_models=2, **{"design.kind": "complement", "baselines.repeats": 0})),
              small, progress=False)
    for argv in (["project", str(small), "--source-class", "A"], ["explain", str(small)]):
        assert main(argv) == EXIT_USAGE
        assert "at least 3" in capsys.readouterr().err
    assert not (small / "projection").exists() and not (small / "explain").exists()


def test_library_calls_on_an_example_study_are_refused_before_any_work(tmp_path: Path) -> None:
    """``project``, ``explain`` and the class report read whole source classes: called as functions on
    an example-level study (no runs at all here, so anything read would fail otherwise), each is
    refused by the context's unit guard before results are read or a folder is made."""
    from transfer_influence.analysis.context import StudyContext
    from transfer_influence.analysis.debugging import explain_study
    from transfer_influence.analysis.projection import project_study
    from transfer_influence.report.build import build_report
    from transfer_influence.study.store import StudyStore

    study = tmp_path / "example-study"
    StudyStore.create_or_open(study, parse_config(tiny_config_dict(**{"design.unit": "example"})), {}, {}, {})
    before = sorted(p.name for p in study.iterdir())
    context = StudyContext.open(study)
    for call, command in ((lambda: project_study(context, source_class="A"), "project"),
                          (lambda: explain_study(context), "explain"),
                          (lambda: build_report(context), "report")):
        with pytest.raises(InputError, match=rf"is an example-level study .* while `{command}` works on source classes"):
            call()
    assert sorted(p.name for p in study.iterdir()) == before
    assert context._results is None  # refused before the results were read


def test_project_study_equals_the_projection_of_the_example_influences(study: Path, results: StudyResults) -> None:
    from transfer_influence.analysis.context import StudyContext
    from transfer_influence.analysis.projection import project_study

    context = StudyContext.open(study, estimator="ridge")
    found = project_study(context, source_class="C", top=3)
    influence = example_influence(results, context.kind, "ridge")
    expected = project_source_class(influence, results.target_labels, results.target_class_names, "C", 3)
    assert found == expected and found.estimator == "ridge"
    with pytest.raises(InputError, match="either a source class"):
        project_study(context, source_class="C", target_class="3")
