"""What-if predictions: contrasts of the datamodel with their full-covariance errors, and the
prediction of a full source minus some classes, each against a direct computation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from transfer_influence.analysis.whatif import what_if_removed
from transfer_influence.estimate import datamodel_contrasts, datamodel_influence, group_means
from transfer_influence.pipeline.run import run_study
from transfer_influence.study.config import parse_config
from transfer_influence.study.design import iid_mask
from transfer_influence.study.results import open_study
from transfer_influence.study.store import StudyStore

from .conftest import tiny_config_dict


def test_contrast_of_coefficients_and_its_error_match_ordinary_least_squares() -> None:
    rng = np.random.default_rng(0)
    masks = np.stack([iid_mask(1, i, 9, 0.35) for i in range(80)])
    outputs = masks @ rng.normal(0, 0.1, size=(9, 3)) + rng.normal(0, 0.05, size=(80, 3))
    contrast = np.zeros((2, 9))
    contrast[0, [1, 4]] = -1.0
    contrast[1, 0] = 1.0
    values, errors, dof = datamodel_contrasts(masks, outputs, contrast, ridge=0.0)
    fit = datamodel_influence(masks, outputs, ridge=0.0)
    np.testing.assert_allclose(values, contrast @ fit.values, atol=1e-6)
    x = masks - masks.mean(axis=0)
    y = outputs - outputs.mean(axis=0)
    gram_inverse = np.linalg.pinv(x.T @ x)
    beta = gram_inverse @ x.T @ y
    rank = np.linalg.matrix_rank(x)
    assert dof == pytest.approx(80 - 1 - rank)
    sigma2 = ((y - x @ beta) ** 2).sum(axis=0) / (80 - 1 - rank)
    # the identified part of each contrast (fixed-size subsets: orthogonal to the all-ones direction)
    identified = contrast - contrast.mean(axis=1, keepdims=True)
    expected = np.sqrt(np.outer(np.einsum("ck,kl,cl->c", identified, gram_inverse, identified), sigma2))
    np.testing.assert_allclose(errors, expected, rtol=1e-6)
    # not the root sum of squared coefficient errors: the coefficients are correlated
    naive = np.sqrt(fit.stderr[1] ** 2 + fit.stderr[4] ** 2)
    assert not np.allclose(errors[0], naive, rtol=1e-3)


def test_contrasts_need_one_weight_per_class() -> None:
    masks = np.stack([iid_mask(1, i, 6, 0.5) for i in range(20)])
    with pytest.raises(ValueError, match="one weight per class"):
        datamodel_contrasts(masks, np.ones((20, 1)), np.ones((1, 5)))


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("whatif") / "study"
    run_study(parse_config(tiny_config_dict(num_models=12, **{"baselines.repeats": 2})), path, progress=False)
    return path


def test_prediction_equals_the_direct_formula(study: Path) -> None:
    results = open_study(study)
    result = what_if_removed(results, ["A", "0"], ridge=0.0, scaling="none", level="linear")
    diluted = what_if_removed(results, ["A", "0"], ridge=0.0, level="linear")
    logged = what_if_removed(results, ["A", "0"], ridge=0.0)
    correct = np.asarray(results.outputs("correct"), dtype=np.float64)
    columns = np.column_stack([correct.mean(axis=1), group_means(correct, results.target_labels, 10)])
    store = StudyStore.open(study)
    full_rows = []
    for run in ("all_source-000000", "all_source-000001"):
        c = store.read_run(run)[1]["correct"].astype(np.float64)[None, :]
        full_rows.append(np.concatenate([[c.mean()], group_means(c, results.target_labels, 10)[0]]))
    full = np.mean(full_rows, axis=0)
    fit = datamodel_influence(results.masks, columns, ridge=0.0, blocks=results.blocks)
    names = results.class_names
    differential = -(fit.values[names.index("A")] + fit.values[names.index("0")])
    q = 2 / (8 - 4)
    np.testing.assert_allclose(result.full_accuracy, full, atol=1e-9)
    np.testing.assert_allclose(result.differential, differential, atol=1e-5)
    np.testing.assert_allclose(result.predicted, (1 - q) * full + q * columns.mean(axis=0) + differential, atol=1e-5)
    d = 4 / (8 - 2)  # the class's share of the source: one of 4 where measured, one of 6 after removal
    np.testing.assert_allclose(diluted.predicted, (1 - q) * full + q * columns.mean(axis=0) + d * differential, atol=1e-5)
    w = np.log(8 / 6) / np.log(8 / 4)  # 6 classes placed between 4 and 8 in log classes
    np.testing.assert_allclose(logged.predicted, (1 - w) * full + w * columns.mean(axis=0) + d * differential, atol=1e-5)
    assert logged.level == "log" and "log-linear" in logged.extrapolation
    low, high = result.interval()
    assert (low < result.predicted).all() and (result.predicted < high).all()
    assert result.columns[0] == "all targets" and len(result.columns) == 11
    assert "extrapolates" in result.extrapolation and "4 of 8" in result.extrapolation


def test_bad_removals_are_refused(study: Path, tmp_path: Path) -> None:
    results = open_study(study)
    with pytest.raises(ValueError, match="unknown source class 'nope'"):
        what_if_removed(results, ["nope"])
    with pytest.raises(ValueError, match="unknown source class 'a'; did you mean 'A'"):
        what_if_removed(results, ["a"])
    with pytest.raises(ValueError, match="leaves no source"):
        what_if_removed(results, list(results.class_names))
    with pytest.raises(ValueError, match="at least one"):
        what_if_removed(results, [])
    with pytest.raises(ValueError, match="unknown scaling"):
        what_if_removed(results, ["A"], scaling="log")
    with pytest.raises(ValueError, match="unknown level"):
        what_if_removed(results, ["A"], level="cubic")
    bare = tmp_path / "bare"
    run_study(parse_config(tiny_config_dict(num_models=4, **{"baselines.repeats": 0})), bare, progress=False)
    with pytest.raises(ValueError, match="all-source baseline"):
        what_if_removed(open_study(bare), ["A"])


def test_whatif_command_prints_every_column(study: Path, capsys) -> None:
    from transfer_influence.cli import main

    assert main(["whatif", str(study), "--remove", "A, 0"]) == 0
    out = capsys.readouterr().out
    assert "without A, 0" in out and "all targets" in out and "extrapolates" in out
    assert len([line for line in out.splitlines() if "[" in line]) == 11
    assert main(["whatif", str(study), "--remove", "Z"]) == 2


def test_removal_curve_is_the_what_if_of_each_prefix(study: Path) -> None:
    from transfer_influence.analysis.whatif import removal_curve

    results = open_study(study)
    order = [results.class_names.index(c) for c in ("B", "0", "E", "1", "A")]
    curve = removal_curve(results, order, ridge=0.0)
    assert len(curve.predicted) == 1 + (8 - 4)  # k stops where the source is as small as the subsets (4)
    for k in range(1, len(curve.predicted)):
        single = what_if_removed(results, [results.class_names[c] for c in order[:k]], ridge=0.0)
        assert curve.predicted[k] == pytest.approx(single.predicted[0], abs=1e-9)
        assert curve.predicted_stderr[k] == pytest.approx(single.predicted_stderr[0], abs=1e-9)
    assert curve.predicted[0] == pytest.approx(single.full_accuracy[0])
    assert curve.best_k == int(np.argmax(curve.predicted))
    assert curve.predicted_gain == pytest.approx(curve.predicted.max() - curve.predicted[0])


def test_removal_curve_on_some_targets_uses_only_their_accuracy(study: Path) -> None:
    from transfer_influence.analysis.whatif import removal_curve

    results = open_study(study)
    columns = np.arange(0, results.target_labels.size, 3)
    curve = removal_curve(results, [0, 1], columns, ridge=0.0, scaling="none", level="linear")
    correct = np.asarray(results.outputs("correct"), dtype=np.float64)[:, columns].mean(axis=1, keepdims=True)
    store = StudyStore.open(study)
    full = np.mean([store.read_run_output(r, "correct")[columns].mean() for r in ("all_source-000000", "all_source-000001")])
    beta = datamodel_influence(results.masks, correct, ridge=0.0, blocks=results.blocks).values[:, 0]
    q = np.array([1, 2]) / 4
    expected = (1 - q) * full + q * correct.mean() - np.cumsum(beta[[0, 1]])
    np.testing.assert_allclose(curve.predicted, [full, *expected], atol=1e-6)


def _one_baseline_copy(study: Path, tmp_path: Path) -> Path:
    """The study with its second all-source run removed: one baseline run left."""
    import shutil

    copy = tmp_path / "one-baseline"
    shutil.copytree(study, copy)
    (copy / "runs" / "all_source-000001.npz").unlink()
    return copy


def test_one_baseline_run_gives_a_prediction_without_an_interval(study: Path, tmp_path: Path, capsys) -> None:
    from transfer_influence.cli import main
    from transfer_influence.errors import InputError

    copy = _one_baseline_copy(study, tmp_path)
    result = what_if_removed(open_study(copy), ["A"])
    assert result.baseline_runs == 1 and not result.has_interval
    assert np.isnan(result.predicted_stderr).all()  # never a silent zero
    with pytest.raises(InputError, match="no error term"):
        result.interval()
    assert main(["whatif", str(copy), "--remove", "A"]) == 0
    out = capsys.readouterr().out
    assert "no interval" in out and "baselines.repeats ≥ 2" in out
    assert not [line for line in out.splitlines() if "[" in line]
    two = what_if_removed(open_study(study), ["A"])
    assert two.has_interval and (two.dof < 20).all()  # Welch–Satterthwaite: 2 baseline runs, 1 dof each


def test_removals_outside_the_measured_source_sizes_are_refused_before_work(study: Path, monkeypatch) -> None:
    from transfer_influence.errors import InputError
    from transfer_influence.study.results import StudyResults

    results = open_study(study)

    def no_reading(self, kind="p_true"):  # type: ignore[no-untyped-def]
        raise AssertionError("outputs read before the removal was checked")

    monkeypatch.setattr(StudyResults, "outputs", no_reading)
    with pytest.raises(InputError, match=r"sources of 4 \(its subsets\) to 8 classes.*remove at most 4"):
        what_if_removed(results, ["A", "B", "C", "D", "E"])


def test_the_command_entry_predicts_from_the_context_and_refuses_example_studies(study: Path, tmp_path: Path) -> None:
    """``what_if(context, …)`` (what ``transfer-influence whatif`` calls) is ``what_if_removed`` on the
    context's results; on an example-level study it refuses, before any run is read, by itself."""
    from transfer_influence.analysis.context import StudyContext
    from transfer_influence.analysis.whatif import what_if
    from transfer_influence.errors import InputError

    from .test_handpicked import empty_example_study

    via_context = what_if(StudyContext.open(study), ["A", "0"], ridge=0.0, level="linear")
    direct = what_if_removed(open_study(study), ["A", "0"], ridge=0.0, level="linear")
    np.testing.assert_allclose(via_context.predicted, direct.predicted)
    np.testing.assert_allclose(via_context.predicted_stderr, direct.predicted_stderr)
    examples = empty_example_study(tmp_path / "examples")
    with pytest.raises(InputError, match=r"example-level study \(design.unit: example\).*`whatif` works on source classes"):
        what_if(StudyContext.open(examples), ["A"])


def test_sweep_comparison_predicts_on_the_scoring_half(study: Path, tmp_path: Path) -> None:
    import json

    from transfer_influence.analysis.counterfactual import split_targets
    from transfer_influence.analysis.whatif import compare_with_sweep

    results = open_study(study)
    scoring = ~split_targets(results.target_labels, results.config.seed)
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "summary.csv").write_text(
        "selection,k,mean,std,n,diff_vs_full,diff_se,beats_full_2se\n"
        "full,0,0.80,0.01,2,,,\n"
        "top,2,0.70,0.01,2,-0.10,0.01,False\n"
    )
    (sweep / "removed.json").write_text(json.dumps({
        "target_split": {"selection_examples": int((~scoring).sum()), "scoring_examples": int(scoring.sum())},
        "arms": [{"selection": "full", "k": 0, "removed": []}, {"selection": "top", "k": 2, "removed": ["A", "0"]}],
    }))
    point = compare_with_sweep(results, sweep).points[0]
    on_scoring = what_if_removed(results, ["A", "0"], columns=np.flatnonzero(scoring))
    on_all = what_if_removed(results, ["A", "0"])
    assert point.predicted == pytest.approx(on_scoring.predicted[0] - on_scoring.full_accuracy[0], abs=1e-12)
    assert point.predicted != pytest.approx(on_all.predicted[0] - on_all.full_accuracy[0], abs=1e-9)
    assert point.measured == pytest.approx(-0.10)
    data = json.loads((sweep / "removed.json").read_text())
    data["target_split"]["scoring_examples"] += 1
    (sweep / "removed.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="scoring images"):
        compare_with_sweep(results, sweep)
