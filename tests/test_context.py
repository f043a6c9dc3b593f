"""The analysis layer's one study context: opened once, every choice checked before any work."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import tiny_config_dict
from transfer_influence.analysis.context import RetrainOptions, StudyContext
from transfer_influence.errors import InputError
from transfer_influence.pipeline.run import run_study
from transfer_influence.study.config import parse_config

LETTERS: dict[str, Any] = {
    "dataset": {"dataset": "glyphs", "options": {"classes": ["G", "H", "J", "K"], "images_per_class": 16, "max_fonts": 12}},
    "shots_per_class": 4,
    "test_size": 40,
}


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny two-target study: complement pairs, every class in and out of half the models."""
    path = tmp_path_factory.mktemp("context") / "study"
    cache = tmp_path_factory.getbasetemp() / "glyph-cache"
    overrides = {"num_models": 6, "design.kind": "complement", "baselines.repeats": 0,
                 "extra_targets": [{"name": "letters", **LETTERS}]}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TRANSFER_INFLUENCE_CACHE", str(cache))
        run_study(parse_config(tiny_config_dict(**overrides)), path, progress=False)
    return path


def test_defaults_come_from_the_study_config(study: Path) -> None:
    context = StudyContext.open(study)
    assert (context.kind, context.estimator) == (context.config.analysis.output_kind, context.config.analysis.estimator)
    assert context.unit_kind == "class" and context.is_primary_target
    assert context.results.num_models == 6 and context.partial_note == ""
    assert context.results is context.results  # read once


def test_folder_rule_is_one_for_every_command(study: Path) -> None:
    primary = StudyContext.open(study)
    extra = StudyContext.open(study, target="letters")
    assert primary.folder("influence") == study / "influence"
    assert extra.folder("influence") == study / "influence" / "target-letters"
    assert extra.folder("counterfactual") == study / "counterfactual" / "target-letters"
    assert extra.target_name == "letters" and extra.results.target_name == "letters"
    assert not (study / "influence").exists()  # a folder is named, never created, by the context


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"kind": "p_tru"}, "unknown output kind 'p_tru'"),
        ({"estimator": "rigde"}, "unknown estimator 'rigde'"),
        ({"target": "nope"}, "no target named 'nope'"),
        ({"units": "example", "command": "leaks"}, "is a class-level study"),
    ],
)
def test_bad_choices_are_refused_before_reading_results(study: Path, options: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message):
        StudyContext.open(study, **options)


def test_an_unfinished_study_needs_partial(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from transfer_influence.analysis.context import _check_model_count

    def results(done: int, planned: int) -> Any:
        return SimpleNamespace(num_models=done, config=SimpleNamespace(num_models=planned))

    with pytest.raises(InputError, match="pass --partial"):
        _check_model_count(tmp_path, results(5, 10), require_finished=True)
    _check_model_count(tmp_path, results(5, 10), require_finished=False)
    _check_model_count(tmp_path, results(10, 10), require_finished=True)
    with pytest.raises(InputError, match="influences need at least 3"):
        _check_model_count(tmp_path, results(2, 2), require_finished=True)


def test_with_analysis_shares_what_was_read(study: Path) -> None:
    context = StudyContext.open(study, retrain=RetrainOptions(serial=True, workers=1))
    results = context.results
    other = context.with_analysis(kind="correct", estimator="ridge")
    assert (other.kind, other.estimator, other.retrain.serial) == ("correct", "ridge", True)
    assert other.results is results
    with pytest.raises(InputError, match="unknown estimator"):
        context.with_analysis(estimator="lasso")
