"""Bad input is one clear error (exit 2) that names the problem and the fix, raised before any work
and leaving nothing behind (issue 14, item 4): unknown datasets and options in a config, numbers out
of range on any command, estimator / output-kind / class names with their close matches, a
projection larger than the data, a copied study's rate, and the flags renamed so that ``--target``
means one thing."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from transfer_influence import cli
from transfer_influence.cli import EXIT_USAGE, main
from transfer_influence.cli import arguments
from transfer_influence.cli.arguments import RenamedFlagWarning
from transfer_influence.cli.parser import build_parser
from transfer_influence.errors import ConfigError, InputError, close_matches, unknown_name_error
from transfer_influence.pipeline.run import run_study
from transfer_influence.pipeline.status import format_status, study_status
from transfer_influence.study.config import parse_config
from transfer_influence.study.store import StudyStore, study_lock

from .conftest import tiny_config_dict, write_config


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bad-input") / "study"
    run_study(parse_config(tiny_config_dict(num_models=10, **{"baselines.repeats": 0})), path, progress=False)
    return path


def _one_error(capsys: pytest.CaptureFixture[str]) -> str:
    """The single stderr line of a refused command (no traceback, no usage block)."""
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def _never(*args: object, **kwargs: object) -> None:
    raise AssertionError("work started before the input was checked")


# ---- 1. datasets and their options, at config load ----------------------------------------------
@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"source.components": [{"dataset": "glyph"}]}, "unknown dataset 'glyph'; did you mean 'glyphs'?"),
        ({"target.dataset": {"dataset": "Digits"}}, "unknown dataset 'Digits'; did you mean 'digits'?"),
        ({"source.components": [{"dataset": "glyphs", "options": {"image_per_class": 5}}]},
         "dataset 'glyphs': unknown option 'image_per_class'; did you mean 'images_per_class'?"),
    ],
)
def test_an_unknown_dataset_or_option_is_refused_at_load_with_no_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], override: dict, expected: str
) -> None:
    with pytest.raises(ConfigError, match="8 datasets: 'glyphs'|its options are: classes, images_per_class"):
        parse_config(tiny_config_dict(**override))
    cfg = write_config(tmp_path / "c.yaml", tiny_config_dict(**override))
    assert main(["run", str(cfg), "--out", str(tmp_path / "study"), "--quiet"]) == EXIT_USAGE
    assert expected in _one_error(capsys)
    assert not (tmp_path / "study").exists()


def test_a_run_refused_before_its_study_file_leaves_no_directory(tmp_path: Path, capsys) -> None:
    cfg = write_config(tmp_path / "c.yaml", tiny_config_dict(**{"design.kind": "partition", "design.alpha": 0.25}))
    assert main(["run", str(cfg), "--out", str(tmp_path / "study"), "--models", "3", "--quiet"]) == EXIT_USAGE
    assert "need at least" in _one_error(capsys)
    assert not (tmp_path / "study").exists()  # the lock's directory went with the lock


def test_a_bad_option_value_is_a_user_error_that_leaves_no_directory(tmp_path: Path, capsys) -> None:
    glyphs = {"dataset": "glyphs", "options": {"classes": "alphanumeric", "images_per_class": 4, "max_fonts": 2}}
    cfg = write_config(tmp_path / "c.yaml", tiny_config_dict(**{"source.components": [glyphs]}))
    assert main(["run", str(cfg), "--out", str(tmp_path / "study"), "--quiet"]) == EXIT_USAGE
    assert "unknown glyph class set 'alphanumeric'" in _one_error(capsys)
    assert not (tmp_path / "study").exists()


def test_the_lock_keeps_a_directory_it_did_not_create(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    with study_lock(tmp_path / "mine"):
        pass
    assert (tmp_path / "mine").is_dir()
    with pytest.raises(RuntimeError, match="boom"), study_lock(tmp_path / "new"):
        raise RuntimeError("boom")
    assert not (tmp_path / "new").exists()


def test_models_below_the_configs_minimum_is_a_config_error_not_a_bug(tmp_path: Path, capsys) -> None:
    cfg = write_config(tmp_path / "c.yaml", tiny_config_dict())
    assert main(["run", str(cfg), "--out", str(tmp_path / "study"), "--models", "1", "--quiet"]) == EXIT_USAGE
    assert "command line: num_models: Input should be greater than or equal to 2" in _one_error(capsys)
    assert not (tmp_path / "study").exists()


# ---- 2, 3 and the rest of the parser: numbers and names checked while parsing -------------------
@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["influence", "{study}", "--fdr", "2"], "--fdr must be between 0 and 1"),
        (["influence", "{study}", "--fdr", "0"], "--fdr must be between 0 and 1"),
        (["influence", "{study}", "--fdr", "nan"], "--fdr must be a finite number"),
        (["influence", "{study}", "--top", "-3"], "--top must be at least 1 (got -3)"),
        (["diagnose", "{study}", "--reliability", "1.5"], "--reliability must be between 0 and 1"),
        (["diagnose", "{study}", "--target", "1.5"], "--target must be between 0 and 1"),
        (["diagnose", "{study}", "--estimators", "dim,rigde"], "unknown estimator 'rigde'; did you mean 'ridge'?"),
        (["diagnose", "{study}", "--estimators", "dim,"], "--estimators must be estimators separated by commas"),
        (["diagnose", "{study}", "--kinds", "p_ture"], "unknown output kind 'p_ture'; did you mean 'p_true'?"),
        (["plan", "{config}", "--reliability", "1.5"], "--reliability must be between 0 and 1"),
        (["plan", "{config}", "--alphas", "0.5,1.2"], "--alphas must be fractions between 0 and 1"),
        (["plan", "{config}", "--alphas", "0.5,x"], "(got 'x' in '0.5,x')"),
        (["plan", "{config}", "--pilot-seconds", "0"], "--pilot-seconds must be above 0"),
        (["plan", "{config}", "--budget-minutes", "-5"], "--budget-minutes must be above 0"),
        (["run", "{config}", "--workers", "0"], "--workers must be at least 1"),
        (["run", "{config}", "--models", "0"], "--models must be at least 1"),
        (["run", "{config}", "--stop-at", "1"], "--stop-at must be between 0 and 1"),
        (["demo", "--out", "{out}", "--workers", "0"], "--workers must be at least 1"),
        (["status", "{study}", "--list", "-1"], "--list must be at least 0"),
        (["work", "{study}", "--index", "-1"], "--index must be at least 0"),
        (["counterfactual", "{study}", "--repeats", "-1"], "--repeats must be at least 1"),
        (["counterfactual", "{study}", "--workers", "0"], "--workers must be at least 1"),
        (["handpicked", "{study}", "--repeats", "0"], "--repeats must be at least 1"),
        (["verify", "{study}", "--summary", "--pairs", "0"], "--pairs must be at least 1"),
        (["verify", "{study}", "--summary", "--classes", "-2"], "--classes must be at least 1"),
        (["explain", "{study}", "--count", "-2"], "--count must be at least 1"),
        (["leaks", "{study}", "--per-target", "-1"], "--per-target must be at least 1"),
        (["leaks", "{study}", "--recall-k", "0"], "--recall-k must be at least 1"),
        (["project", "{study}", "--source-class", "A", "--top", "x"], "--top must be a whole number of at least 1"),
    ],
)
def test_a_bad_number_or_name_is_refused_while_parsing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, argv: list[str], expected: str
) -> None:
    for module in (cli.study_commands, cli.reading, cli.acting, cli.common):  # nothing is read, let alone trained
        for name in ("load_config", "open_finished", "study_context"):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, _never)
    monkeypatch.setattr(StudyStore, "open", classmethod(lambda cls, *a, **k: _never()))
    config = write_config(tmp_path / "c.yaml", tiny_config_dict())
    values = {"study": str(tmp_path / "study"), "config": str(config), "out": str(tmp_path / "demo")}
    assert main([a.format(**values) for a in argv]) == EXIT_USAGE
    assert expected in _one_error(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]


def test_an_unknown_output_kind_leaves_no_influence_folder(study: Path, tmp_path: Path, capsys) -> None:
    assert main(["influence", str(study), "--kind", "p_ture", "--out", str(tmp_path / "tables")]) == EXIT_USAGE
    assert "unknown output kind 'p_ture'; did you mean 'p_true'?" in _one_error(capsys)
    assert not (tmp_path / "tables").exists()


def test_the_fdr_and_top_that_are_fine_still_run(study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["influence", str(study), "--fdr", "0.05", "--top", "2"]) == 0
    out = capsys.readouterr().out
    assert "at FDR 0.05" in out
    assert out.count("\n  ") == 4  # two classes at each end


def test_the_argument_types_accept_their_range_and_nothing_else() -> None:
    assert (arguments.positive_int("1"), arguments.nonnegative_int("0"), arguments.fraction_open("0.999")) == (1, 0, 0.999)
    assert arguments.fraction_list("0.5, 0.2,0.5") == (0.5, 0.2)
    assert arguments.estimator_list("ridge, dim") == "ridge,dim" and arguments.output_kind_list("all") == "all"
    for check, text in ((arguments.positive_int, "0"), (arguments.positive_int, "1.5"), (arguments.nonnegative_int, "-1"),
                        (arguments.fraction_open, "1"), (arguments.fraction_open, "inf"), (arguments.positive_float, "-0.1"),
                        (arguments.fraction_list, "0.5,"), (arguments.estimator_list, "lasso"), (arguments.output_kind_list, "all,p_true")):
        with pytest.raises(argparse.ArgumentTypeError):
            check(text)


# ---- 4. project: --top against the data, names before the estimate ------------------------------
def test_project_top_past_the_target_images_is_refused_before_the_estimate(
    study: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("transfer_influence.analysis.rankings.example_influence", _never)
    assert main(["project", str(study), "--source-class", "A", "--top", "5000"]) == EXIT_USAGE
    assert ("--top 5000 is more than 75, half of the study's 150 target test images (no image is listed at both "
            "ends); give --top 75 or less") in _one_error(capsys)
    assert main(["project", str(study), "--target-class", "7", "--top", "151"]) == EXIT_USAGE
    assert "--top 151 is more than the study's 150 target test images; give --top 150 or less" in _one_error(capsys)
    assert main(["project", str(study), "--source-class", "a"]) == EXIT_USAGE
    assert "unknown source class 'a'; did you mean 'A'? (8 source classes: 'A', 'B'" in _one_error(capsys)
    assert main(["project", str(study), "--target-class", "seven"]) == EXIT_USAGE
    assert "unknown target class 'seven'" in _one_error(capsys)
    assert not (study / "projection").exists()


def test_project_top_at_the_limit_runs(study: Path, tmp_path: Path) -> None:
    assert main(["project", str(study), "--source-class", "A", "--top", "75", "--out", str(tmp_path)]) == 0
    rows = (tmp_path / "source_A_p_true_dim.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * 75


# ---- 5. status on a copied study ----------------------------------------------------------------
def test_a_copied_studys_rate_is_its_own_not_the_copys(study: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(study, copy, copy_function=shutil.copy)  # like `cp -r`: every file's mtime is now
    finished = sorted(StudyStore.open(study).read_run_mask_and_record(r)[1]["finished"]
                      for r in StudyStore.open(study).finished_run_ids())
    expected = (len(finished) - 1) / (finished[-1] - finished[0]) * 60.0
    copied, original = study_status(copy), study_status(study)
    assert copied.models_per_minute == pytest.approx(expected)  # not thousands per minute
    assert original.models_per_minute == pytest.approx(expected)
    assert f"{expected:.2f} models per minute" in format_status(copied)


def test_status_lists_no_missing_run_with_list_zero(study: Path) -> None:
    status = study_status(study)
    status.missing = ["subset-000010", "subset-000011"]
    lines = format_status(status, max_listed=0).splitlines()
    assert "2 missing" in lines[0] and not any(line.startswith("missing") for line in lines)
    assert "missing subset-000010 and 1 more" in format_status(status, max_listed=1)


# ---- 6. one unknown-name message with close matches ---------------------------------------------
def test_close_matches_find_another_case_and_near_spellings() -> None:
    names = ["Bag", "Sneaker", "Shirt", "T-shirt/top", "A", "a"]
    assert close_matches("bag", names) == ["Bag"]
    assert close_matches("Snekaer", names) == ["Sneaker"]
    assert close_matches("shirt", names)[0] == "Shirt"
    assert close_matches("zebra", names) == []
    assert close_matches("rigde", ["dim", "ridge"]) == ["ridge"]


def test_an_unknown_name_message_suggests_counts_and_points_to_all_names() -> None:
    names = [f"c{k:02d}" for k in range(40)] + ["Bag"]
    message = str(unknown_name_error("source class", "bag", names, "source classes", "`influence STUDY`"))
    assert message == ("unknown source class 'bag'; did you mean 'Bag'? (41 source classes: 'c00', 'c01', 'c02', "
                       "'c03', 'c04', 'c05', 'c06', 'c07', 'c08', 'c09', …; see `influence STUDY`)")
    short = str(unknown_name_error("estimator", "lasso", ["dim", "ridge"]))
    assert short == "unknown estimator 'lasso' (2 estimators: 'dim', 'ridge')"


def test_an_unknown_target_image_suggests_the_close_id(study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from transfer_influence.study.results import open_study

    first = str(open_study(study).target_ids[0])
    assert main(["explain", str(study), "--image", first.upper()]) == EXIT_USAGE
    assert f"unknown target id {first.upper()!r}; did you mean {first!r}?" in _one_error(capsys)


# ---- 7. one meaning per flag, the old spellings kept with a note ---------------------------------
@pytest.mark.parametrize(
    ("old", "new", "dest", "value"),
    [
        (["influence", "S", "--target", "x"], ["influence", "S", "--target-set", "x"], "target_set", "x"),
        (["report", "S", "--target", "x"], ["report", "S", "--target-set", "x"], "target_set", "x"),
        (["project", "S", "--source-class", "A", "--target", "x"],
         ["project", "S", "--source-class", "A", "--target-set", "x"], "target_set", "x"),
        (["counterfactual", "S", "--target", "x"], ["counterfactual", "S", "--target-set", "x"], "target_set", "x"),
        (["whatif", "S", "--remove", "A", "--target", "x"], ["whatif", "S", "--remove", "A", "--target-set", "x"],
         "target_set", "x"),
        (["handpicked", "S", "--target", "x"], ["handpicked", "S", "--target-set", "x"], "target_set", "x"),
        (["compare-rankings", "S", "--target", "x"], ["compare-rankings", "S", "--target-set", "x"], "target_set", "x"),
        (["explain", "S", "--target", "i1", "--target", "i2"], ["explain", "S", "--image", "i1", "--image", "i2"],
         "image", ["i1", "i2"]),
        (["verify", "S", "--target", "i1"], ["verify", "S", "--image", "i1"], "image", "i1"),
        (["diagnose", "S", "--target", "0.6"], ["diagnose", "S", "--reliability", "0.6"], "target", 0.6),
        (["plan", "C", "--target", "0.6"], ["plan", "C", "--reliability", "0.6"], "reliability", 0.6),
    ],
)
def test_old_flag_spellings_still_work_with_a_note(old: list[str], new: list[str], dest: str, value: object) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new spelling warns about nothing
        assert getattr(build_parser().parse_args(new), dest) == value
    with pytest.warns(RenamedFlagWarning, match=rf"`{old[0]} --target` is now `{new[-2]}"):
        assert getattr(build_parser().parse_args(old), dest) == value


def test_the_help_shows_only_the_new_spellings() -> None:
    for command, new in (("explain", "--image ID"), ("verify", "--image ID"), ("diagnose", "--reliability R"),
                         ("plan", "--reliability R"), ("influence", "--target-set NAME")):
        text = build_parser()._subparsers._group_actions[0].choices[command].format_help()  # type: ignore[union-attr]
        assert new in text and "--target " not in text and "--target," not in text, (command, text)


def test_the_note_is_one_line_on_stderr_before_the_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "transfer_influence.cli", "verify", str(tmp_path / "missing"), "--target", "x"],
        capture_output=True, text=True,
    )
    assert done.returncode == EXIT_USAGE
    assert done.stderr.splitlines() == [
        "note: `verify --target` is now `--image ID`; the old spelling still works for now",
        f"error: {tmp_path / 'missing'} is not a study directory (no study.json); create one with "
        "`transfer-influence run CONFIG`",
    ]


def test_a_missing_command_or_unknown_flag_is_one_error_naming_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == EXIT_USAGE
    assert "the following arguments are required: command; `transfer-influence --help`" in _one_error(capsys)
    assert main(["verify", "S"]) == EXIT_USAGE
    assert "one of the arguments --image --summary is required" in _one_error(capsys)
    with pytest.raises(InputError, match="unrecognized arguments: --bogus"):
        build_parser().parse_args(["influence", "S", "--bogus"])
