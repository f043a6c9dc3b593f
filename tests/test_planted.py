"""Planted faults (source.plant): what is planted, how detection is scored, and a tiny real study
whose planted leaks the datamodels find."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from transfer_influence.analysis.planted import default_model_counts, leak_columns, score_planted
from transfer_influence.cli import EXIT_USAGE, main
from transfer_influence.data.base import ImageDataset
from transfer_influence.data.planted import MAX_SHIFT, plant_faults, read_planted
from transfer_influence.errors import InputError
from transfer_influence.pipeline.run import run_study
from transfer_influence.study.config import parse_config
from transfer_influence.study.views import build_study_data

from .conftest import tiny_config_dict, write_config


def _dataset(name: str, classes: tuple[str, ...], per_class: int, seed: int) -> ImageDataset:
    rng = np.random.default_rng(seed)
    n = per_class * len(classes)
    return ImageDataset(
        name=name,
        images=rng.integers(0, 256, size=(n, 1, 12, 12), dtype=np.uint8),
        labels=np.repeat(np.arange(len(classes)), per_class),
        class_names=classes,
        example_ids=np.array([f"{name}/{i:04d}" for i in range(n)]),
    )


SOURCE = _dataset("src", ("a", "0", "1", "2", "T-shirt/top"), 20, 0)
TARGET = _dataset("tgt", ("0", "1", "2", "3"), 10, 1)


def test_leaks_are_target_test_images_under_the_source_class_of_the_same_name() -> None:
    planted = plant_faults(SOURCE, TARGET, leaks_exact=3, leaks_augmented=2, seed=5)
    assert len(planted) == len(SOURCE) + 5
    assert np.array_equal(planted.images[: len(SOURCE)], SOURCE.images)
    truth = read_planted(planted.example_ids)
    assert truth.leak_rows.tolist() == list(range(len(SOURCE), len(SOURCE) + 5))
    assert sorted(truth.leak_styles) == ["augmented"] * 2 + ["exact"] * 3
    target_row = {str(t): j for j, t in enumerate(TARGET.example_ids)}
    for row, target_id, style in zip(truth.leak_rows, truth.leak_targets, truth.leak_styles):
        j = target_row[target_id]
        assert TARGET.class_names[TARGET.labels[j]] != "3"  # the source has no class '3': never leaked
        assert planted.class_names[planted.labels[row]] == TARGET.class_names[TARGET.labels[j]]
        if style == "exact":
            assert np.array_equal(planted.images[row], TARGET.images[j])
        else:
            assert not np.array_equal(planted.images[row], TARGET.images[j])
    assert len(set(truth.leak_targets)) == 5


def test_an_augmented_leak_is_a_small_shift_of_its_image() -> None:
    rng = np.random.default_rng(0)
    image = np.zeros((1, 12, 12), dtype=np.uint8)
    image[0, 5, 5] = 255
    from transfer_influence.data.planted import augment

    moved = augment(image, rng)
    y, x = np.unravel_index(np.argmax(moved[0]), (12, 12))
    assert 0 < max(abs(y - 5), abs(x - 5)) <= MAX_SHIFT
    assert moved[0, y, x] >= 0.85 * 255 - 20


def test_mislabels_get_another_shared_class_and_their_ids_say_what_they_show() -> None:
    planted = plant_faults(SOURCE, TARGET, mislabels=6, seed=2)
    truth = read_planted(planted.example_ids)
    assert truth.mislabel_rows.size == 6 and truth.leak_rows.size == 0
    shared = {"0", "1", "2"}
    for row, shown in zip(truth.mislabel_rows, truth.mislabel_shown):
        assert shown == SOURCE.class_names[SOURCE.labels[row]] and shown in shared
        given = planted.class_names[planted.labels[row]]
        assert given in shared and given != shown
    untouched = np.setdiff1d(np.arange(len(SOURCE)), truth.mislabel_rows)
    assert np.array_equal(planted.labels[untouched], SOURCE.labels[untouched])


def test_a_class_name_with_a_slash_survives_the_id() -> None:
    target = _dataset("tgt", ("T-shirt/top", "a"), 10, 3)
    planted = plant_faults(SOURCE, target, mislabels=2, seed=0)
    assert set(read_planted(planted.example_ids).mislabel_shown) <= {"T-shirt/top", "a"}


def test_planting_is_deterministic_and_follows_its_seed() -> None:
    first = plant_faults(SOURCE, TARGET, 2, 2, 4, seed=7)
    again = plant_faults(SOURCE, TARGET, 2, 2, 4, seed=7)
    other = plant_faults(SOURCE, TARGET, 2, 2, 4, seed=8)
    assert first.fingerprint() == again.fingerprint() != other.fingerprint()
    assert plant_faults(SOURCE, TARGET) is SOURCE


@pytest.mark.parametrize(
    ("target", "counts", "message"),
    [
        (_dataset("t", ("x", "y"), 5, 0), {"leaks_exact": 1}, "no source class has the name of a target class"),
        (TARGET, {"leaks_exact": 40}, "need as many distinct target test images"),
        (TARGET, {"mislabels": 31}, "at most half"),
        (TARGET, {"mislabels": -1}, "non-negative"),
    ],
)
def test_impossible_plants_are_refused(target: ImageDataset, counts: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        plant_faults(SOURCE, target, **counts)


def test_a_bad_plant_is_one_error_before_any_training(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tiny_config_dict(**{
        "source.components": [{"dataset": "glyphs", "options": {"classes": ["A", "B", "C"], "images_per_class": 8, "max_fonts": 12}}],
        "source.plant": {"leaks_exact": 1},  # letters share no class with the digit target
    })
    path = write_config(tmp_path / "bad.yaml", config)
    assert main(["run", str(path), "--out", str(tmp_path / "study"), "--quiet"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("error") == 1 and "no source class has the name of a target class" in err
    assert not (tmp_path / "study" / "runs").exists() or not any((tmp_path / "study" / "runs").iterdir())


def test_the_study_plants_into_training_only() -> None:
    config = parse_config(tiny_config_dict(**{
        "source.components": [{"dataset": "glyphs", "options": {"classes": "digits", "images_per_class": 8, "max_fonts": 12}}],
        "source.plant": {"leaks_exact": 2, "leaks_augmented": 1, "mislabels": 3},
        "target.test_size": 40,
    }))
    data = build_study_data(config)
    train_truth = read_planted(data.source_train.example_ids)
    assert (train_truth.leak_rows.size, train_truth.mislabel_rows.size) == (3, 3)
    assert read_planted(data.source_holdout.example_ids).empty
    assert set(train_truth.leak_targets) <= {str(t) for t in data.target_test.example_ids}


# ---- scoring ------------------------------------------------------------------------------------
def test_scores_count_ranks_ties_and_enrichment() -> None:
    ids = np.array([f"s{i}" for i in range(6)] + ["planted-leak/exact/t1", "planted-mislabel/0/s9"])
    truth = read_planted(ids)
    columns = leak_columns(truth, ["t0", "t1"])
    coefficients = np.zeros((8, 2))
    coefficients[6, 1] = 0.5
    coefficients[2, 1] = 0.9  # one example beats the leak on its own image: rank 2
    coefficients[7, 0] = -0.4  # the mislabel is the most negative example anywhere
    score = score_planted(coefficients, truth, columns, num_models=50, estimator="dim", top_k=1)
    assert score.leak_ranks.tolist() == [2]
    assert score.leak_recall() == 0.0 and score.row()["exact_recall_top1"] == 0.0
    assert score.mislabel_hits_min == 1 and score.enrichment(score.mislabel_hits_min) == pytest.approx(8.0)
    assert score_planted(coefficients, truth, columns, 50, "dim", top_k=2).leak_recall() == 1.0
    flat = score_planted(np.zeros((8, 2)), truth, columns, 50, "lasso", top_k=7)
    assert flat.leak_ranks.tolist() == [8]  # an all-zero column finds nothing: ties rank behind
    assert flat.mislabel_hits_min == flat.mislabel_hits_sum == 0  # nor does an all-zero score flag a mislabel


def test_tied_scores_flag_no_mislabel_whatever_the_row_order() -> None:
    ids = np.array(["planted-mislabel/0/a"] + [f"s{i}" for i in range(9)])
    truth = read_planted(ids)
    # all ten tie at zero: the mislabel, first in row order, must not be flagged for its position
    score = score_planted(np.zeros((10, 3)), truth, np.zeros(0, dtype=np.int64), 50, "lasso")
    assert score.mislabel_hits_min == score.mislabel_hits_sum == 0


def test_leaks_of_images_the_study_does_not_test_are_refused() -> None:
    truth = read_planted(np.array(["planted-leak/exact/elsewhere"]))
    with pytest.raises(InputError, match="do not test|does not test"):
        leak_columns(truth, ["t0"])


def test_default_curve_doubles_up_to_all_models() -> None:
    assert default_model_counts(1200) == [100, 200, 400, 800, 1200]
    assert default_model_counts(90) == [90]


# ---- a tiny real study ----------------------------------------------------------------------------
def planted_config(models: int):  # type: ignore[no-untyped-def]
    return tiny_config_dict(**{
        "source.components": [{"dataset": "glyphs", "options": {"classes": "digits", "images_per_class": 12, "max_fonts": 12}}],
        "source.plant": {"leaks_exact": 3, "leaks_augmented": 3, "mislabels": 4},
        "design.unit": "example",
        "design.alpha": 0.5,
        "num_models": models,
        "baselines.repeats": 0,
        "target.test_size": 60,
        "model.channels": [16, 32, 16],
        "model.feature_dim": 64,
        "train.epochs": 8,
        "train.batch_size": 32,
        "train.lr": 0.003,
        "transfer.head_l2": 0.3,
        "analysis.output_kind": "p_true",
    })


@pytest.fixture(scope="module")
def planted_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    study = tmp_path_factory.mktemp("planted") / "study"
    run_study(parse_config(planted_config(200)), study, progress=False, stream=io.StringIO())
    return study


def test_leaks_planted_in_a_tiny_study_are_found(planted_study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["leaks", str(planted_study), "--estimator", "ridge", "--curve", "--curve-estimators", "dim,ridge",
            "--models", "50,200", "--top", "4"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "planted faults (source.plant):" in out and "leaks in the top 10 of their own image" in out
    rows = list(csv.DictReader((planted_study / "leaks" / "planted_curve.csv").open()))
    assert [(r["models"], r["estimator"]) for r in rows] == [("50", "dim"), ("50", "ridge"), ("200", "dim"), ("200", "ridge")]
    for row in rows[2:]:  # all 200 models: at least 5 of the 6 leaks in their image's top 10
        assert float(row["leak_recall_top10"]) >= 5 / 6 - 1e-6  # the CSV rounds to 6 digits
    assert (planted_study / "leaks" / "planted_curve.png").stat().st_size > 0


def test_curve_options_are_checked_before_fitting(
    planted_study: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import transfer_influence.analysis.leaks as leaks_module

    def no_fit(*args: object, **kwargs: object) -> None:
        raise AssertionError("fitted before the options were checked")

    monkeypatch.setattr(leaks_module, "example_coefficients", no_fit)
    assert main(["leaks", str(planted_study), "--curve", "--models", "100,900"]) == EXIT_USAGE
    assert "--models 900" in capsys.readouterr().err
    assert main(["leaks", str(planted_study), "--models", "100"]) == EXIT_USAGE
    assert "go with --curve" in capsys.readouterr().err


def test_removing_source_examples_is_a_counterfactual_of_an_example_study(
    planted_study: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["counterfactual", str(planted_study), "--k", "4", "--repeats", "3", "--serial", "--quiet", "--estimator", "dim"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "what-if rule: not available (what-if predictions are made for class removals only)" in out
    removed = json.loads((planted_study / "counterfactual" / "removed.json").read_text())
    source_ids = set(np.load(planted_study / "data.npz")["source_train__ids"].tolist())
    bottom = next(a for a in removed["arms"] if a["selection"] == "bottom")
    assert len(bottom["removed"]) == 4 and set(bottom["removed"]) <= source_ids
    summary = list(csv.DictReader((planted_study / "counterfactual" / "summary.csv").open()))
    selections = [r["selection"] for r in summary if r["selection"] != "significant"]
    assert selections == ["full", "top", "bottom", "random", "worst_pair", "planted"]
    assert all(int(r["n"]) == 3 for r in summary)
    worst = next(a for a in removed["arms"] if a["selection"] == "worst_pair")
    assert len(worst["removed"]) == 4 and set(worst["removed"]) <= source_ids
    # the ground-truth reference: exactly the planted mislabels removed, never recommended
    planted = next(a for a in removed["arms"] if a["selection"] == "planted")
    assert sorted(planted["removed"]) == sorted(i for i in source_ids if i.startswith("planted-mislabel/"))
    assert len(planted["removed"]) == 4
    assert "planted" not in (planted_study / "counterfactual" / "recommended_source.txt").read_text().splitlines()[0]


def test_demo_of_an_example_study_scores_its_planted_faults(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path / "planted.yaml", planted_config(12))
    out = tmp_path / "demo"
    assert main(["demo", "--config", str(config), "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "planted faults (source.plant):" in printed and "detection against the number of models (dim, ridge)" in printed
    rows = list(csv.DictReader((out / "leaks" / "planted_curve.csv").open()))
    assert [(r["models"], r["estimator"]) for r in rows] == [("12", "dim"), ("12", "ridge")]
    assert "Planted faults found" in (out / "report" / "index.html").read_text()


def test_diagnose_measures_the_reliability_of_example_influences(planted_study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diagnose", str(planted_study), "--kinds", "p_true", "--estimators", "dim"]) == 0
    diagnostics = json.loads((planted_study / "diagnose" / "diagnostics.json").read_text())
    assert "p_true" in json.dumps(diagnostics)
    out = capsys.readouterr().out
    assert all(level in out for level in ("overall", "target_class", "example"))


def test_the_shipped_leak_config_plants_what_its_comment_says() -> None:
    from transfer_influence.study.config import load_config, packaged_config
    from transfer_influence.study.design import check_plan

    config = load_config(packaged_config("leaks"))
    data = build_study_data(config)
    truth = read_planted(data.source_train.example_ids)
    assert (len(data.source_train), truth.leak_rows.size, truth.mislabel_rows.size, len(data.target_test)) == (2040, 40, 40, 1000)
    assert sorted(truth.leak_styles).count("exact") == 20
    assert config.design.unit == "example" and config.analysis.output_kind == "p_true"
    check_plan(config, len(data.source_train))  # 3,000 models leave every example both in and out


def test_the_planted_reference_is_never_recommended() -> None:
    from transfer_influence.analysis.counterfactual import Arm, ArmResult, CounterfactualResult

    full = ArmResult(Arm("full", 0, ((),) * 3), np.array([0.80, 0.81, 0.82]), None)
    def arm(selection: str, gain: float) -> ArmResult:
        accuracy = full.accuracy + gain + np.array([0.0, 0.001, -0.001])
        return ArmResult(Arm(selection, 2, ((0, 1),) * 3), accuracy, accuracy - full.accuracy)

    result = CounterfactualResult(Path("."), ("a", "b", "c"), None, [full, arm("planted", 0.05), arm("bottom", 0.02)],  # type: ignore[arg-type]
                                  [1, 2, 3], np.ones(3, dtype=bool), unit_kind="example")
    assert result.candidate is not None and result.candidate.arm.selection == "bottom"


def test_demo_of_an_example_study_without_plants_pairs_leaks_without_scoring(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = planted_config(12)
    del raw["source"]["plant"]
    out = tmp_path / "demo"
    assert main(["demo", "--config", str(write_config(tmp_path / "plain.yaml", raw)), "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "most positive (candidate leaks)" in printed and "planted faults" not in printed
    assert (out / "leaks" / "pairs.csv").exists() and not (out / "leaks" / "planted_curve.csv").exists()
    page = (out / "report" / "index.html").read_text()
    assert "Leak and mislabel candidates" in page and "Planted faults found" not in page and "Not run yet" in page


def test_a_ranking_from_a_study_of_the_other_unit_is_refused(planted_study: Path, tmp_path: Path) -> None:
    from transfer_influence.analysis.counterfactual import run_counterfactual

    class_study = tmp_path / "class-study"
    run_study(parse_config(tiny_config_dict()), class_study, progress=False, stream=io.StringIO())
    from transfer_influence.analysis.context import RetrainOptions, StudyContext

    def context(path: Path) -> StudyContext:
        return StudyContext.open(path, retrain=RetrainOptions(serial=True, progress=False))

    with pytest.raises(InputError, match="is a class-level study .* same design.unit"):
        run_counterfactual(context(planted_study), [2], 3, ranking_from=context(class_study))
    with pytest.raises(InputError, match="is an example-level study .* same design.unit"):
        run_counterfactual(context(class_study), [2], 3, ranking_from=context(planted_study))
    assert not (class_study / "counterfactual").exists()
    assert main(["counterfactual", str(class_study), "--k", "2", "--repeats", "3", "--serial", "--quiet",
                 "--ranking-from", str(planted_study)]) == EXIT_USAGE
    assert not (class_study / "counterfactual").exists()


def test_report_of_an_example_study_shows_pairs_planted_scores_and_removals(planted_study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    removal = ["counterfactual", str(planted_study), "--k", "4", "--repeats", "3", "--serial", "--quiet", "--estimator", "dim"]
    assert main(removal) == 0  # the removal test's sweep: stored retrains are reused
    assert main(["report", str(planted_study), "--estimator", "dim"]) == 0
    page = (planted_study / "report" / "index.html").read_text()
    assert "Leak and mislabel candidates" in page and "Planted faults found" in page
    assert "Removing source examples" in page and "worst_pair" in page and "Not run yet" not in page
    pairs = list(csv.DictReader((planted_study / "report" / "leak_pairs.csv").open()))
    assert {r["sign"] for r in pairs} == {"positive", "negative"}
    assert main(["report", str(planted_study), "--target-set", "other"]) == EXIT_USAGE
