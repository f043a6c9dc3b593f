"""User code by import path: a dataset loader, a separate fixed test split, a source trainer with the
user's own nn.Module (examples/), plugin versions in the results key, and bad paths refused at load."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from transfer_influence import open_study
from transfer_influence.errors import ConfigError, InputError, RunFailedError
from transfer_influence.pipeline.run import run_study
from transfer_influence.study.config import parse_config
from transfer_influence.study.views import build_study_data

from .conftest import tiny_config_dict

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
OWN_DIGITS = f"{EXAMPLES / 'own_dataset.py'}:load_digits"
OWN_TRAINER = f"{EXAMPLES / 'own_trainer.py'}:make_trainer"
CPU = {"device": "cpu", "bf16_autocast": False}


def _own_target(**extra: Any) -> dict[str, Any]:
    return {
        "dataset": {"dataset": OWN_DIGITS, "options": {"split": "train"}},
        "test_dataset": {"dataset": OWN_DIGITS, "options": {"split": "test", "max_per_class": 15}},
        "shots_per_class": 5,
        **extra,
    }


def _module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, body: str) -> str:
    """A module ``name`` importable by dotted name from ``tmp_path``."""
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(body))
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


# --------------------------------------------------------------------------------------------
# datasets


def test_a_user_loader_gives_the_few_shot_set_and_its_own_test_split_is_used_whole() -> None:
    data = build_study_data(parse_config(tiny_config_dict(target=_own_target())))
    assert len(data.target_train) == 5 * 10
    assert len(data.target_test) == 150
    assert all(i.startswith("own_digits/") for i in data.target_test.example_ids)
    train_rows = {int(i.split("/")[1]) for i in data.target_train.example_ids}
    test_rows = {int(i.split("/")[1]) for i in data.target_test.example_ids}
    assert max(train_rows) < min(test_rows)  # the shots come from the train split only
    again = build_study_data(parse_config(tiny_config_dict(target=_own_target())))
    assert np.array_equal(again.target_train.example_ids, data.target_train.example_ids)


def test_a_dotted_module_loader_works_and_options_reach_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _module(tmp_path, monkeypatch, "my_loaders", f"""
        import importlib.util
        spec = importlib.util.spec_from_file_location("own", {str(EXAMPLES / 'own_dataset.py')!r})
        own = importlib.util.module_from_spec(spec); spec.loader.exec_module(own)
        def digits(split="train", **kwargs):
            return own.load_digits(split, **kwargs)
    """)
    config = parse_config(tiny_config_dict(**{"target.dataset": {"dataset": "my_loaders:digits", "options": {"max_per_class": 30}}}))
    data = build_study_data(config)
    assert len(data.target_train) + len(data.target_test) == 5 * 10 + 150
    assert data.target_class_names == tuple("0123456789")


def test_test_size_beside_a_test_dataset_is_refused() -> None:
    with pytest.raises(ConfigError, match="test_dataset is used whole"):
        parse_config(tiny_config_dict(target=_own_target(test_size=50)))


def test_a_test_dataset_with_other_classes_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = _own_target()
    target["test_dataset"] = {"dataset": "digits", "options": {"max_per_class": 5}}
    config = parse_config(tiny_config_dict(target=target))
    build_study_data(config)  # scikit-learn's digits name the same classes 0-9: accepted
    _module(tmp_path, monkeypatch, "letters", f"""
        import importlib.util
        spec = importlib.util.spec_from_file_location("own", {str(EXAMPLES / 'own_dataset.py')!r})
        own = importlib.util.module_from_spec(spec); spec.loader.exec_module(own)
        from dataclasses import replace
        def load():
            d = own.load_digits("test")
            return replace(d, class_names=tuple("abcdefghij"))
    """)
    target["test_dataset"] = {"dataset": "letters:load"}
    with pytest.raises(InputError, match="same classes in the same order"):
        build_study_data(parse_config(tiny_config_dict(target=target)))


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("no_such_module_xyz:load", "does not import"),
        ("json:no_such_function", "has no attribute 'no_such_function'"),
        ("json:__doc__", "not a function"),
        ("json", "not an import path"),
        ("missing/file.py:load", "there is no file"),
    ],
)
def test_a_bad_loader_path_is_one_config_error_at_load(path: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        parse_config(tiny_config_dict(**{"target.dataset": {"dataset": path if ":" in path else path + ":"}}))
    assert "target.dataset" in str(caught.value)


def test_a_loader_returning_the_wrong_type_is_refused_before_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _module(tmp_path, monkeypatch, "wrong_loader", "def load():\n    return [1, 2, 3]\n")
    config = parse_config(tiny_config_dict(**{"target.dataset": {"dataset": "wrong_loader:load"}}))
    with pytest.raises(InputError, match="returned a list; a loader must return"):
        run_study(config, tmp_path / "study", progress=False)
    assert not (tmp_path / "study" / "runs").exists()


def test_unknown_options_of_a_user_loader_are_refused_at_load() -> None:
    with pytest.raises(ConfigError, match="unknown option 'splt'; did you mean 'split'"):
        parse_config(tiny_config_dict(**{"target.dataset": {"dataset": OWN_DIGITS, "options": {"splt": "test"}}}))


# --------------------------------------------------------------------------------------------
# trainers


def test_a_tiny_study_trains_the_users_own_module_from_a_config_file(tmp_path: Path) -> None:
    config = parse_config(tiny_config_dict(**{"train.trainer": OWN_TRAINER}, target=_own_target()))
    run_study(config, tmp_path / "study", progress=False)
    results = open_study(tmp_path / "study")
    outputs = results.outputs("correct")
    assert outputs.shape == (8, 150)
    assert 0.3 < outputs.mean() <= 1.0  # the transferred user backbone classifies digits
    assert np.all(np.isfinite(results.source_accuracy)) and np.all(results.source_accuracy > 0)
    run_study(config, tmp_path / "again", progress=False)
    assert np.array_equal(open_study(tmp_path / "again").outputs("p_true"), results.outputs("p_true"))


def test_the_builtin_trainer_meets_the_same_protocol(tiny_config: Any) -> None:
    from transfer_influence.study.design import subset_runs
    from transfer_influence.train.trainers import SourceTrainer
    from transfer_influence.train.worker import BuiltinTrainer, Worker

    worker = Worker(tiny_config, build_study_data(tiny_config))
    assert isinstance(worker.trainer, BuiltinTrainer) and isinstance(worker.trainer, SourceTrainer)
    spec = subset_runs(tiny_config, len(worker.data.class_names), [0])[0]
    result = worker.run(spec)
    assert 0 <= result.source_accuracy <= 1 and not math.isnan(result.target_accuracy)


def test_a_trainer_factory_returning_no_trainer_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _module(tmp_path, monkeypatch, "bad_trainer", "def factory(config, data, device):\n    return 42\n")
    config = parse_config(tiny_config_dict(**{"train.trainer": "bad_trainer:factory"}))
    with pytest.raises(InputError, match="returned a int without a train"):
        run_study(config, tmp_path / "study", progress=False)
    assert not (tmp_path / "study" / "study.json").exists()


def test_a_bad_trainer_path_is_refused_at_load() -> None:
    with pytest.raises(ConfigError, match="train.trainer.*has no attribute 'nope'"):
        parse_config(tiny_config_dict(**{"train.trainer": f"{EXAMPLES / 'own_trainer.py'}:nope"}))


# --------------------------------------------------------------------------------------------
# the results key


def test_two_plugins_or_two_versions_never_share_a_results_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plain = parse_config(tiny_config_dict()).results_key(CPU)
    _module(tmp_path, monkeypatch, "versioned_trainer", "__version__ = '1.0'\ndef factory(config, data, device):\n    pass\n")
    _module(tmp_path, monkeypatch, "other_trainer", "__version__ = '1.0'\ndef factory(config, data, device):\n    pass\n")
    first = parse_config(tiny_config_dict(**{"train.trainer": "versioned_trainer:factory"}))
    other = parse_config(tiny_config_dict(**{"train.trainer": "other_trainer:factory"}))
    assert first.plugin_versions() == {"versioned_trainer:factory": "1.0"}
    first_key = first.results_key(CPU)
    assert len({plain, first_key, other.results_key(CPU)}) == 3
    monkeypatch.setattr("versioned_trainer.__version__", "2.0")
    assert parse_config(tiny_config_dict(**{"train.trainer": "versioned_trainer:factory"})).results_key(CPU) != first_key


def test_an_unversioned_file_plugin_is_keyed_by_its_source(tmp_path: Path) -> None:
    plugin = tmp_path / "loader.py"
    plugin.write_text((EXAMPLES / "own_dataset.py").read_text().replace('__version__ = "1.0"\n', ""))
    config = parse_config(tiny_config_dict(**{"target.dataset": {"dataset": f"{plugin}:load_digits"}}))
    (version,) = config.plugin_versions().values()
    assert version.startswith("source-sha256:")
    plugin.write_text(plugin.read_text() + "\n# edited\n")
    assert config.plugin_versions()[f"{plugin}:load_digits"] != version


def test_configs_without_plugins_keep_their_keys() -> None:
    config = parse_config(tiny_config_dict())
    assert config.plugin_paths() == []
    spelled = parse_config(tiny_config_dict(**{"train.trainer": None, "target.test_dataset": None}))
    assert spelled.results_key(CPU) == config.results_key(CPU)


# --------------------------------------------------------------------------------------------
# from the command line


def test_the_cli_runs_a_study_of_the_users_loader_and_trainer_and_refuses_a_bad_path(tmp_path: Path) -> None:
    import yaml

    from transfer_influence.cli import EXIT_USAGE, main

    config = tiny_config_dict(**{"train.trainer": OWN_TRAINER}, target=_own_target())
    path = tmp_path / "own.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["run", str(path), "--out", str(tmp_path / "own"), "--models", "4"]) == 0
    assert main(["influence", str(tmp_path / "own")]) == 0
    assert open_study(tmp_path / "own").outputs().shape == (4, 150)
    config["train"]["trainer"] = f"{EXAMPLES / 'own_trainer.py'}:make_trainr"
    path.write_text(yaml.safe_dump(config))
    assert main(["run", str(path), "--out", str(tmp_path / "bad")]) == EXIT_USAGE
    assert not (tmp_path / "bad").exists()


def test_the_example_config_names_the_example_plugins() -> None:
    from transfer_influence.study.config import load_config

    import os

    here = os.getcwd()
    os.chdir(EXAMPLES.parent)  # its paths are relative to the repository root
    try:
        config = load_config(EXAMPLES / "own_study.yaml")
    finally:
        os.chdir(here)
    assert config.plugin_versions() == {
        "examples/own_dataset.py:load_digits": "1.0",
        "examples/own_trainer.py:make_trainer": "1.0",
    }
    assert config.target.test_dataset is not None and config.target.test_size is None


def test_a_finished_study_opens_where_its_plugins_do_not_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from transfer_influence.study.store import StudyStore

    (tmp_path / "plugins").mkdir()
    module = _module(tmp_path / "plugins", monkeypatch, "gone_loader", f"""
        import importlib.util
        spec = importlib.util.spec_from_file_location("own", {str(EXAMPLES / 'own_dataset.py')!r})
        own = importlib.util.module_from_spec(spec); spec.loader.exec_module(own)
        __version__ = "3.1"
        load = own.load_digits
    """)
    config = parse_config(tiny_config_dict(**{"target.dataset": {"dataset": f"{module}:load"}, "num_models": 4}))
    run_study(config, tmp_path / "study", progress=False)
    (tmp_path / "plugins" / "gone_loader.py").unlink()
    monkeypatch.delitem(__import__("sys").modules, "gone_loader")
    with pytest.raises(ConfigError, match="does not import"):
        parse_config(tiny_config_dict(**{"target.dataset": {"dataset": f"{module}:load"}}))
    assert StudyStore.open(tmp_path / "study").config.target.dataset.dataset == "gone_loader:load"
    assert open_study(tmp_path / "study").outputs().shape == (4, 150)


def test_an_extra_target_may_have_its_own_fixed_test_split() -> None:
    extra = {"name": "own", **_own_target()}
    config = parse_config(tiny_config_dict(extra_targets=[extra]))
    data = build_study_data(config)
    assert len(data.extra_targets["own"].test) == 150 and len(data.extra_targets["own"].train) == 50
    plain_extra = {"name": "own", "dataset": {"dataset": "digits"}, "shots_per_class": 5, "test_size": 150}
    spelled = {**plain_extra, "test_dataset": None}
    key = parse_config(tiny_config_dict(extra_targets=[plain_extra])).results_key(CPU)
    assert parse_config(tiny_config_dict(extra_targets=[spelled])).results_key(CPU) == key
    assert config.results_key(CPU) != key


def test_a_backbone_giving_no_feature_vectors_fails_its_run_saying_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _module(tmp_path, monkeypatch, "flat_trainer", """
        from torch import nn
        class Trainer:
            def train(self, subset):
                return nn.Identity()
        def factory(config, data, device):
            return Trainer()
    """)
    config = parse_config(tiny_config_dict(**{"train.trainer": "flat_trainer:factory", "execution.max_attempts": 1}))
    with pytest.raises(RunFailedError, match=r"must map images \(N, C, H, W\) to features \(N, D\), got \(1, 1, 28, 28\)"):
        run_study(config, tmp_path / "study", progress=False)
