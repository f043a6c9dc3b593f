"""Small studies: a model count the plan check accepts gives a whole report, a smaller one is refused
before training, and the diagnostics that need more models skip with a note instead of failing.

The bug (issue 14, item 3): `demo --models 20` passed the plan check (every class in and out of some
subset), trained 26 runs, then `report` and `diagnose` failed with "influence is undefined for classes
in no subset: ['21', '31']" — the held-out split fitted on one partition block of 10 models, which
sits 2 of the 72 classes out — and left a half-written report folder. The tiny config below has the
same design logic (a partition block sits classes out, one seed per block): at the smallest count
its plan check accepts, the held-out split's training blocks again leave a class in no subset.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from transfer_influence.analysis.context import StudyContext
from transfer_influence.cli import main
from transfer_influence.errors import InputError, PlanError
from transfer_influence.estimate import class_influence
from transfer_influence.evaluate.reliability import held_out_problem, held_out_spearman, split_half_reliability
from transfer_influence.pipeline.run import run_study
from transfer_influence.report import build as report_build
from transfer_influence.report.build import build_report
from transfer_influence.study.config import load_config, packaged_config, parse_config
from transfer_influence.study.design import check_plan, design_mask, minimum_models

from .conftest import tiny_config_dict, write_config

SMALL = {"seed": 6, "design.kind": "partition", "design.alpha": 1 / 3, "train.seeding": "block"}
"""8 glyph classes in blocks of 3 models holding 2 classes each (2 classes sit out of every block)."""


def _small_config(models: int) -> dict:  # type: ignore[type-arg]
    return tiny_config_dict(num_models=models, **SMALL)


@pytest.fixture(scope="module")
def smallest() -> int:
    needed = minimum_models(parse_config(_small_config(8)), 8)
    assert needed >= 8, "the diagnostics must run at this count for the test to mean anything"
    return needed


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory: pytest.TempPathFactory, smallest: int) -> tuple[Path, str]:
    """The demo at the smallest count the plan check accepts, and what it printed."""
    folder = tmp_path_factory.mktemp("small")
    config = write_config(folder / "small.yaml", _small_config(smallest))
    study = folder / "study"
    printed = io.StringIO()  # a module fixture has no capsys
    with contextlib.redirect_stdout(printed):
        assert main(["demo", "--config", str(config), "--out", str(study), "--quiet"]) == 0
    return study, printed.getvalue()


def test_the_smallest_count_that_passes_the_plan_check_gives_a_whole_report(small_demo: tuple[Path, str], smallest: int) -> None:
    study, printed = small_demo
    results_masks = np.stack([design_mask(parse_config(_small_config(smallest)), i, 8) for i in range(smallest)])
    blocks = np.arange(smallest) // 3
    assert held_out_problem(results_masks, blocks) is not None  # the case that used to fail after training
    out = study / "report"
    page = (out / "report.html").read_text()
    for section in ("Findings", "Baselines", "Overall influence", "Per target class", "Reliability", "Projection:", "Mistakes:"):
        assert section in page, section
    diagnostics = json.loads((out / "diagnostics.json").read_text())
    assert any(note.startswith("held-out Spearman and LDS skipped") for note in diagnostics["notes"])
    assert all(row["held_out_spearman"] is None and row["lds"] is None for row in diagnostics["table"])
    assert "held-out Spearman and LDS skipped" in page and "held-out Spearman and LDS skipped" in printed
    assert "findings:" in printed and not list(study.glob(".report.*"))


def test_diagnose_on_the_smallest_study_skips_with_a_note(small_demo: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    study, _ = small_demo
    assert main(["diagnose", str(study)]) == 0
    printed = capsys.readouterr().out
    assert "note: held-out Spearman and LDS skipped" in printed
    saved = json.loads((study / "diagnose" / "diagnostics.json").read_text())
    assert saved["notes"] and saved["table"]


def test_a_count_below_the_smallest_is_refused_before_training(tmp_path: Path, smallest: int, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path / "small.yaml", _small_config(smallest))
    study = tmp_path / "study"
    assert main(["demo", "--config", str(config), "--out", str(study), "--models", str(smallest - 1), "--quiet"]) == 2
    error = capsys.readouterr().err
    assert f"need at least {smallest} models" in error and f"to {smallest} or more" in error
    assert not list(study.glob("runs/*.npz"))  # nothing was trained


def test_the_plan_check_names_the_classes_it_cannot_estimate() -> None:
    config = parse_config(_small_config(3))
    names = ("A", "B", "C", "D", "E", "F", "0", "1")
    masks = np.stack([design_mask(config, i, 8) for i in range(3)])
    left_out = [names[k] for k in np.flatnonzero(masks.sum(axis=0) == 0)]
    with pytest.raises(PlanError) as refused:
        check_plan(config, 8, names)
    assert left_out and all(repr(name) in str(refused.value) for name in left_out) and " in no subset (" in str(refused.value)


def test_held_out_split_of_the_demo_at_20_models_is_skipped_not_an_error() -> None:
    """The demo's design at 20 models: fitting on one block of 10 leaves 2 of the 72 classes out."""
    config = load_config(packaged_config("demo")).with_overrides(num_models=20)
    masks = np.stack([design_mask(config, i, 72) for i in range(20)])
    blocks = np.arange(20) // 10
    outputs = np.random.default_rng(0).random((20, 30))
    labels = np.arange(30) % 10
    scores = held_out_spearman(masks, outputs, labels, 10, "ridge", blocks=blocks)
    assert all(np.isnan(v) for v in scores.values())
    problem = held_out_problem(masks, blocks, unit_names=tuple(f"class{k}" for k in range(72)))
    assert problem is not None and "'class21'" in problem and "'class31'" in problem
    curves = split_half_reliability(masks, outputs, labels, 10, "ridge", blocks=blocks)
    assert all(c.models_per_half.size == 0 for c in curves.values())


def test_estimator_errors_say_column_or_name_never_a_bare_number() -> None:
    masks = np.zeros((5, 3), dtype=bool)
    masks[:, 1] = True
    masks[0, 2] = True
    with pytest.raises(InputError, match=r"in every subset: mask columns 1 \(pass class_names"):
        class_influence(masks, np.ones((5, 2)))
    with pytest.raises(InputError, match=r"in every subset: 'B'; classes in no subset: 'A'"):
        class_influence(masks, np.ones((5, 2)), class_names=("A", "B", "C"))


def _broken(*args: object, **kwargs: object) -> None:
    raise RuntimeError("disk full")


def test_a_failed_report_leaves_the_previous_report_untouched(small_demo: tuple[Path, str], monkeypatch: pytest.MonkeyPatch) -> None:
    study, _ = small_demo
    out = study / "report"
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    monkeypatch.setattr(report_build, "plot_per_target_class", _broken)
    with pytest.raises(RuntimeError, match="disk full"):
        build_report(StudyContext.open(study, estimator="ridge"))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in study.iterdir() if p.name.startswith(".report")) == []


def test_a_failed_first_report_leaves_no_folder(tmp_path: Path, small_demo: tuple[Path, str], monkeypatch: pytest.MonkeyPatch) -> None:
    study = tmp_path / "copy"
    shutil.copytree(small_demo[0], study, ignore=shutil.ignore_patterns("report"))
    monkeypatch.setattr(report_build, "plot_baselines", _broken)
    with pytest.raises(RuntimeError, match="disk full"):
        build_report(StudyContext.open(study), diagnostics=False)
    assert not (study / "report").exists() and not [p for p in study.iterdir() if p.name.startswith(".report")]


def test_knockoffs_that_cannot_be_estimated_are_skipped_with_a_note(small_demo: tuple[Path, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Knockoff classes come from the design with another seed: on a small study one of them can sit
    out of every model, and the joint fit would fail; the diagnostics say so and go on."""
    from transfer_influence.analysis import convergence
    from transfer_influence.study.results import open_study

    def one_fake_class_never_in(config, indices, num_classes):  # type: ignore[no-untyped-def]
        fake = np.zeros((len(indices), num_classes), dtype=bool)
        fake[::2, 1:] = True
        return fake

    monkeypatch.setattr(convergence, "knockoff_masks", one_fake_class_never_in)
    diag = convergence.diagnose(open_study(small_demo[0]), show_progress=False)
    assert diag.knockoffs is None and any(note.startswith("knockoffs skipped: 1 of the 8") for note in diag.notes)


def test_a_plan_whose_pilots_measured_nothing_is_refused_not_recommended() -> None:
    from transfer_influence.evaluate.reliability import ReliabilityCurve
    from transfer_influence.pipeline.pilots import Pilot, Recommendation

    empty = ReliabilityCurve("target_class", np.array([]), np.array([]), np.array([]), float("inf"))
    pilot = Pilot(0.25, "partition", 8, 4.0, 0.7, {"dim": empty, "ridge": empty}, {"dim": float("nan"), "ridge": float("nan")})
    with pytest.raises(PlanError, match="--pilot-seconds"):
        Recommendation(0.8, 1.0, "target_class", 8, [pilot]).best()


def test_the_primary_report_keeps_another_targets_report_nested_in_it(tmp_path: Path) -> None:
    """Swapping the primary's folder in whole must carry ``report/target-<name>/`` across, not drop it."""
    from .test_multi_target import two_targets

    study = tmp_path / "two"
    run_study(two_targets(), study, progress=False)
    build_report(StudyContext.open(study), diagnostics=False, actions=False)
    letters = build_report(StudyContext.open(study, target="letters"), diagnostics=False, actions=False)
    assert letters.html_path == study / "report" / "target-letters" / "report.html"
    page = letters.html_path.read_bytes()
    build_report(StudyContext.open(study), diagnostics=False, actions=False)
    assert letters.html_path.read_bytes() == page and (study / "report" / "report.html").is_file()


def test_a_new_report_replaces_files_and_keeps_every_subfolder(tmp_path: Path) -> None:
    """The report's own files are replaced whole; sub-folders are never its own, so an older
    layout's ``report/<name>/``, another target's ``target-<name>/`` and a user's folder survive."""
    from transfer_influence.report.folder import staged_folder

    out = tmp_path / "report"
    for folder in ("letters", "target-fashion", "notes"):
        (out / folder).mkdir(parents=True)
        (out / folder / "kept.txt").write_text(folder)
    (out / "old_figure.png").write_text("stale")
    with staged_folder(out, keep=["target-fashion"]) as staging:
        (staging / "report.html").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["letters", "notes", "report.html", "target-fashion"]
    assert all((out / f / "kept.txt").read_text() == f for f in ("letters", "target-fashion", "notes"))
