"""Several targets from one set of source models: each model is trained once and transferred to
every target, and a target's outputs are those of a study that has it as its only target."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import tiny_config_dict, write_config
from transfer_influence.analysis.rankings import overall_influence
from transfer_influence.cli import main
from transfer_influence.errors import ConfigError, InputError
from transfer_influence.pipeline.run import run_study
from transfer_influence.study.config import StudyConfig, load_config, packaged_config, parse_config
from transfer_influence.study.outputs import OUTPUT_KINDS
from transfer_influence.study.results import StudyResults, open_study
from transfer_influence.study.store import StudyStore

CPU = {"device": "cpu", "bf16_autocast": False}
LETTERS: dict[str, Any] = {
    "dataset": {"dataset": "glyphs", "options": {"classes": ["G", "H", "J", "K"], "images_per_class": 16, "max_fonts": 12}},
    "shots_per_class": 4,
    "test_size": 40,
}
"""A second small target: four glyph classes the source does not hold, rendered at the source's size."""
SMALL = {"num_models": 6, "design.kind": "complement", "baselines.repeats": 1}
"""Complement pairs: every source class is in half of the models and out of the other half."""


def two_targets(**overrides: Any) -> StudyConfig:
    return parse_config(tiny_config_dict(**{**SMALL, "extra_targets": [{"name": "letters", **LETTERS}], **overrides}))


def only_letters(**overrides: Any) -> StudyConfig:
    return parse_config(tiny_config_dict(**{**SMALL, "target": LETTERS, **overrides}))


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A two-target study and the one-target studies of each of its targets, all with one seed."""
    base = tmp_path_factory.mktemp("multi")
    cache = tmp_path_factory.getbasetemp() / "glyph-cache"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TRANSFER_INFLUENCE_CACHE", str(cache))
        paths = {"two": base / "two", "letters": base / "letters", "digits": base / "digits"}
        run_study(two_targets(), paths["two"], progress=False)
        run_study(only_letters(), paths["letters"], progress=False)
        run_study(parse_config(tiny_config_dict(**SMALL)), paths["digits"], progress=False)
    return paths


# ---- configuration ------------------------------------------------------------------------------
def test_one_target_configs_keep_their_results_key() -> None:
    base = parse_config(tiny_config_dict()).results_key(CPU)
    assert parse_config(tiny_config_dict(extra_targets=[])).results_key(CPU) == base
    assert parse_config(tiny_config_dict(**{"target.name": "digits"})).results_key(CPU) == base
    demo = load_config(packaged_config("demo"))
    assert demo.target_names == ["main"]
    with_extra = parse_config(tiny_config_dict(extra_targets=[{"name": "letters", **LETTERS}]))
    assert with_extra.results_key(CPU) != base
    renamed = parse_config(tiny_config_dict(extra_targets=[{"name": "glyphs", **LETTERS}]))
    assert renamed.results_key(CPU) != with_extra.results_key(CPU)


@pytest.mark.parametrize("name", ["Letters", "a/b", "../up", "two__parts", "", "_x", "x" * 41, "has space", "main\n"])
def test_unsafe_target_names_are_refused_when_the_config_loads(name: str) -> None:
    with pytest.raises(ConfigError, match="target name"):
        parse_config(tiny_config_dict(extra_targets=[{"name": name, **LETTERS}]))


def test_target_names_must_be_unique() -> None:
    with pytest.raises(ConfigError, match="unique.*'main'"):
        parse_config(tiny_config_dict(extra_targets=[{"name": "main", **LETTERS}]))
    with pytest.raises(ConfigError, match="unique.*'b'"):
        parse_config(tiny_config_dict(extra_targets=[{"name": "b", **LETTERS}, {"name": "b", **LETTERS}]))
    with pytest.raises(ConfigError, match="name"):
        parse_config(tiny_config_dict(extra_targets=[LETTERS]))  # an extra target needs its own name


# ---- outputs per target ---------------------------------------------------------------------------
def _same_results(a: StudyResults, b: StudyResults) -> None:
    np.testing.assert_array_equal(a.run_indices, b.run_indices)
    np.testing.assert_array_equal(a.masks, b.masks)
    np.testing.assert_array_equal(a.target_ids, b.target_ids)
    np.testing.assert_array_equal(a.target_labels, b.target_labels)
    assert a.target_class_names == b.target_class_names
    np.testing.assert_array_equal(a.target_accuracy, b.target_accuracy)
    for kind in OUTPUT_KINDS:
        np.testing.assert_array_equal(a.outputs(kind), b.outputs(kind))


def test_each_target_gets_exactly_the_outputs_of_its_own_one_target_study(studies: dict[str, Path]) -> None:
    letters = open_study(studies["two"], target="letters")
    assert letters.target_name == "letters" and letters.target_names == ("main", "letters")
    _same_results(letters, open_study(studies["letters"]))
    primary = open_study(studies["two"])
    assert primary.target_name == "main"
    _same_results(primary, open_study(studies["digits"]))
    _same_results(primary.for_target("letters"), letters)
    assert primary.for_target("main") is primary
    np.testing.assert_array_equal(letters.baselines["all_source"], open_study(studies["letters"]).baselines["all_source"])
    store, alone = StudyStore.open(studies["two"]), StudyStore.open(studies["letters"])
    np.testing.assert_array_equal(store.read_run_predicted("subset-000001", "letters"), alone.read_run_predicted("subset-000001"))


def test_influence_of_a_target_is_the_difference_of_means_of_its_own_outputs(studies: dict[str, Path]) -> None:
    results = open_study(studies["two"], target="letters")
    mean = results.outputs("p_true").astype(np.float64).mean(axis=1)
    expected = [mean[results.masks[:, k]].mean() - mean[~results.masks[:, k]].mean() for k in range(len(results.class_names))]
    np.testing.assert_allclose(overall_influence(results, "p_true", "dim").values[:, 0], expected, rtol=1e-5)
    primary = overall_influence(open_study(studies["two"]), "p_true", "dim").values[:, 0]
    assert not np.allclose(primary, expected)


def test_run_files_keep_the_primary_members_and_add_each_extra_target(studies: dict[str, Path]) -> None:
    one = StudyStore.open(studies["digits"])
    with np.load(one.run_path("subset-000000")) as archive:
        assert set(archive.files) == {"mask", "record", "predicted", *(f"output__{k}" for k in OUTPUT_KINDS)}
    with np.load(StudyStore.open(studies["two"]).run_path("subset-000000")) as archive:
        extra = {f"output__letters__{k}" for k in OUTPUT_KINDS} | {"predicted__letters"}
        assert set(archive.files) == {"mask", "record", "predicted", *(f"output__{k}" for k in OUTPUT_KINDS)} | extra
        record = json.loads(str(archive["record"]))
    assert set(record["extra_target_accuracy"]) == {"letters"}
    assert open_study(studies["digits"], target="main").num_models == 6


def test_a_run_file_without_the_extra_targets_outputs_is_moved_aside(studies: dict[str, Path], tmp_path: Path) -> None:
    study = tmp_path / "two"
    shutil.copytree(studies["two"], study)
    store = StudyStore.open(study)
    mask, outputs, record = store.read_run("subset-000002")
    spec = type("Spec", (), {"run_id": "subset-000002", "kind": "subset", "index": 2, "seed": record["seed"], "mask": mask})()
    kept = {k: v for k, v in record.items() if k in ("source_accuracy", "target_accuracy", "seconds")}
    store.write_run(spec, outputs, kept)  # type: ignore[arg-type]
    check = store.check_run("subset-000002")
    assert not check.ok and "output__letters__p_true" in str(check.problem)


def test_a_resumed_two_target_study_equals_an_uninterrupted_one(studies: dict[str, Path], tmp_path: Path) -> None:
    study = tmp_path / "resumed"
    run_study(two_targets(num_models=2, **{"baselines.repeats": 0}), study, progress=False)
    (study / "runs" / "subset-000001.npz").unlink()
    open_study(study, target="letters")  # consolidates the first run only
    run_study(two_targets(**{"baselines.repeats": 0}), study, progress=False)
    for target in ("main", "letters"):
        resumed, whole = open_study(study, target=target), open_study(studies["two"], target=target)
        _same_results(resumed, whole)


# ---- commands ---------------------------------------------------------------------------------------
def test_unknown_target_is_one_clear_error_naming_the_studys_targets(
    studies: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(InputError, match="no target named 'fashion'.*main, letters"):
        open_study(studies["two"], target="fashion")
    for command in (["influence"], ["report"], ["counterfactual", "--serial", "--quiet"], ["whatif", "--remove", "A"]):
        assert main([command[0], str(studies["two"]), *command[1:], "--target-set", "fashion"]) == 2
        assert "no target named 'fashion'; its targets are main, letters" in capsys.readouterr().err
    for command in ("explain", "diagnose"):
        assert main([command, str(studies["two"]), "--target-set", "fashion"]) == 2
        assert "its targets are main, letters" in capsys.readouterr().err
    assert main(["influence", str(studies["digits"]), "--target-set", "letters"]) == 2
    assert "its targets are main" in capsys.readouterr().err


def test_influence_command_writes_each_targets_tables_apart(studies: dict[str, Path], tmp_path: Path) -> None:
    study = tmp_path / "two"
    shutil.copytree(studies["two"], study)
    assert main(["influence", str(study), "--target-set", "letters", "--estimator", "dim", "--kind", "p_true"]) == 0
    assert main(["influence", str(study), "--estimator", "dim", "--kind", "p_true"]) == 0
    letters_csv = (study / "influence" / "target-letters" / "overall_p_true_dim.csv").read_text()
    primary_csv = (study / "influence" / "overall_p_true_dim.csv").read_text()
    assert letters_csv != primary_csv
    values = np.load(study / "influence" / "target-letters" / "example_values_p_true_dim.npy")
    assert values.shape == (8, 40)
    assert main(["project", str(study), "--target-set", "letters", "--source-class", "A", "--top", "2"]) == 0
    assert (study / "projection" / "target-letters" / "source_A_p_true_dim.csv").is_file()
    assert not (study / "projection" / "source_A_p_true_dim.csv").exists()


def test_counterfactual_on_another_target_shares_the_retrains(studies: dict[str, Path], tmp_path: Path) -> None:
    study = tmp_path / "two"
    shutil.copytree(studies["two"], study)
    options = ["--k", "2", "--repeats", "3", "--serial", "--quiet", "--estimator", "dim"]
    assert main(["counterfactual", str(study), "--target-set", "letters", *options]) == 0
    folder = study / "counterfactual" / "target-letters"
    assert (folder / "summary.csv").is_file() and (folder / "counterfactual.png").is_file()
    assert not (study / "counterfactual" / "summary.csv").exists()
    runs = sorted(p.name for p in (study / "counterfactual" / "runs").glob("*.npz"))
    assert runs
    sweep = StudyStore.open(study / "counterfactual")
    for run in runs:
        with np.load(sweep.run_path(run[:-4])) as archive:
            assert "output__letters__correct" in archive.files
    before = {run: (study / "counterfactual" / "runs" / run).stat().st_mtime_ns for run in runs}
    assert main(["counterfactual", str(study), *options]) == 0
    after = sorted(p.name for p in (study / "counterfactual" / "runs").glob("*.npz"))
    # The primary's ranking removes other classes, but the full source and every arm both rankings
    # share are the letters sweep's retrains, read again rather than retrained.
    assert set(runs) <= set(after) and len(after) < 2 * len(runs)
    assert {run: (study / "counterfactual" / "runs" / run).stat().st_mtime_ns for run in runs} == before
    assert (study / "counterfactual" / "summary.csv").read_text() != (folder / "summary.csv").read_text()
    rows = (folder / "summary.csv").read_text().splitlines()
    assert rows[0].startswith("selection,k,mean") and len(rows) > 2
    # The what-if rule of the letters ranking starts from the all-source run's letters accuracy on
    # their selection half (k = 0), not from its accuracy on the primary's images.
    from transfer_influence.analysis.counterfactual import split_targets

    store = StudyStore.open(study)
    [baseline] = [r for r in store.finished_run_ids() if r.startswith("all_source-")]
    selection = split_targets(open_study(study, target="letters").target_labels, store.config.seed)
    rule = json.loads((folder / "removed.json").read_text())["whatif_rule"]
    assert rule["available"]
    assert rule["predicted_accuracy_by_k"][0] == pytest.approx(store.read_run_output(baseline, "correct", "letters")[selection].mean())


def test_whatif_of_another_target_is_anchored_on_that_targets_baseline(
    studies: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """A prediction for the letters target interpolates from the all-source run's letters accuracy,
    overall and per letter (it once read the primary's, a test set of another size)."""
    from transfer_influence.analysis.context import StudyContext
    from transfer_influence.analysis.whatif import what_if

    store = StudyStore.open(studies["two"])
    [baseline] = [r for r in store.finished_run_ids() if r.startswith("all_source-")]
    correct = store.read_run_output(baseline, "correct", "letters").astype(np.float64)
    labels = open_study(studies["two"], target="letters").target_labels
    result = what_if(StudyContext.open(studies["two"], target="letters"), ["A"])
    assert result.columns == ("all targets", "G", "H", "J", "K")
    expected = [correct.mean(), *(correct[labels == c].mean() for c in range(4))]
    np.testing.assert_allclose(result.full_accuracy, expected, rtol=1e-6)
    assert main(["whatif", str(studies["two"]), "--target-set", "letters", "--remove", "A"]) == 0
    out = capsys.readouterr().out
    assert f"{'all targets':>14} {correct.mean():>11.4f}" in out and "no interval" in out


def test_report_of_another_target_goes_to_its_own_folder(studies: dict[str, Path], tmp_path: Path) -> None:
    study = tmp_path / "two"
    shutil.copytree(studies["two"], study)
    assert main(["report", str(study), "--target-set", "letters", "--estimator", "dim"]) == 0
    page = (study / "report" / "target-letters" / "report.html").read_text()
    assert "target <code>letters</code>" in page
    assert not (study / "report" / "report.html").exists()


def test_old_one_target_config_files_still_load(tmp_path: Path) -> None:
    config = write_config(tmp_path / "old.yaml", tiny_config_dict())
    loaded = load_config(config)
    assert loaded.extra_targets == [] and loaded.target.name == "main"


def test_explain_and_verify_take_the_target_set_of_the_image(studies: dict[str, Path], tmp_path: Path) -> None:
    study = tmp_path / "two"
    shutil.copytree(studies["two"], study)
    letters = open_study(study, target="letters")
    image = str(letters.target_ids[0])
    assert main(["explain", str(study), "--target-set", "letters", "--image", image, "--estimator", "dim"]) == 0
    assert list((study / "explain" / "target-letters").glob("targets_*_p_true_dim.csv"))
    assert not (study / "explain" / "targets_p_true_dim.csv").exists()
    assert main(["verify", str(study), "--target-set", "letters", "--image", image, "--remove", "A",
                 "--repeats", "3", "--serial", "--quiet", "--estimator", "dim"]) == 0
    details = json.loads(next((study / "verify" / "target-letters").glob("*.json")).read_text())
    assert details["target_id"] == image and details["true_label"] in letters.target_class_names
