"""Subset designs are reproducible from (seed, index); configs validate with clear messages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from transfer_influence.study.config import ConfigError, load_config, packaged_config, parse_config
from transfer_influence.study.design import baseline_runs, complement_mask, iid_mask, subset_runs, train_seed

from .conftest import tiny_config_dict, write_config


def test_iid_masks_rebuild_from_index_and_have_fixed_size() -> None:
    a = [iid_mask(7, i, 50, 0.3) for i in range(20)]
    b = [iid_mask(7, i, 50, 0.3) for i in reversed(range(20))][::-1]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
        assert x.sum() == 15
    assert len({m.tobytes() for m in a}) == 20
    assert not np.array_equal(iid_mask(7, 0, 50, 0.3), iid_mask(8, 0, 50, 0.3))


def test_complement_pairs_cover_every_class_once() -> None:
    for pair in range(5):
        s, sc = complement_mask(1, 2 * pair, 30, 0.5), complement_mask(1, 2 * pair + 1, 30, 0.5)
        np.testing.assert_array_equal(s, ~sc)
        assert s.sum() == 15


@pytest.mark.parametrize("num_classes", [72, 70, 75, 11])
def test_partition_subsets_all_have_one_size_and_never_overlap_within_a_block(num_classes: int) -> None:
    from transfer_influence.study.design import partition_mask, partition_subset_size

    size = partition_subset_size(num_classes, 0.1)
    assert size == num_classes // 10
    masks = np.stack([partition_mask(5, i, num_classes, 0.1) for i in range(200)])
    assert set(masks.sum(axis=1).tolist()) == {size}  # 72 classes used to mix 7- and 8-class subsets
    for block in masks.reshape(20, 10, num_classes):
        assert block.sum(axis=0).max() == 1  # every class in at most one model of a block
    counts = masks.sum(axis=0)
    assert counts.min() > 0 and counts.max() < 200


def test_complement_design_needs_alpha_one_half() -> None:
    with pytest.raises(ConfigError, match="complement.*alpha must be 0.5"):
        parse_config(tiny_config_dict(**{"design.kind": "complement", "design.alpha": 0.1}))
    with pytest.raises(ValueError, match="alpha = 0.5"):
        complement_mask(0, 1, 72, 0.1)  # used to alternate 7- and 65-class subsets


def test_partition_design_needs_whole_inverse_alpha() -> None:
    with pytest.raises(ConfigError, match="1/alpha to be a whole number"):
        parse_config(tiny_config_dict(**{"design.kind": "partition", "design.alpha": 0.3}))


def test_alpha_that_leaves_no_class_out_is_refused() -> None:
    with pytest.raises(ValueError, match="alpha"):
        iid_mask(0, 0, 3, 0.9)


def test_seeding_modes(tiny_config) -> None:
    independent = {train_seed(tiny_config, i) for i in range(10)}
    common = tiny_config.with_overrides(**{"train.seeding": "common"})
    assert len(independent) == 10
    assert len({train_seed(common, i) for i in range(10)}) == 1


def test_run_specs(tiny_config) -> None:
    specs = subset_runs(tiny_config, 8, range(4))
    assert [s.run_id for s in specs] == [f"subset-00000{i}" for i in range(4)]
    baselines = baseline_runs(tiny_config, 8)
    assert {s.kind for s in baselines} == {"all_source", "random_init"}
    assert all(s.mask.all() for s in baselines if s.kind == "all_source")


def test_results_key_ignores_execution_and_model_count(tiny_config) -> None:
    same = tiny_config.with_overrides(**{"num_models": 99, "execution.workers": 7})
    different = tiny_config.with_overrides(**{"design.alpha": 0.3})
    assert same.results_key() == tiny_config.results_key()
    assert different.results_key() != tiny_config.results_key()


def test_config_errors_name_the_field(tmp_path: Path) -> None:
    bad = tiny_config_dict(**{"design.alpha": 1.5, "train.epochz": 3})
    with pytest.raises(ConfigError) as err:
        load_config(write_config(tmp_path / "bad.yaml", bad))
    assert "design.alpha" in str(err.value) and "train.epochz" in str(err.value)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(tmp_path / "list.yaml")
    (tmp_path / "broken.yaml").write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "broken.yaml")


def test_packaged_demo_config_is_valid() -> None:
    config = load_config(packaged_config("demo"))
    assert config.name == "demo" and len(config.source.components) == 2
    assert parse_config(config.model_dump(mode="json")) == config


def test_too_few_models_are_refused_before_training_with_the_minimum(tmp_path: Path, monkeypatch) -> None:
    from transfer_influence.errors import PlanError
    from transfer_influence.pipeline.run import run_study
    from transfer_influence.study.design import minimum_models

    config = parse_config(tiny_config_dict(num_models=3, **{"design.kind": "partition", "design.alpha": 0.25}))
    needed = minimum_models(config, 8)
    assert needed >= 4  # at least one whole block of 4 models
    import transfer_influence.execute as execute

    def no_training(*args, **kwargs):  # the check must come before any executor exists
        raise AssertionError("training started")

    monkeypatch.setattr("transfer_influence.pipeline.run.make_executor", no_training)
    with pytest.raises(PlanError, match=f"at least {needed} models"):
        run_study(config, tmp_path / "study", progress=False)
    assert not (tmp_path / "study" / "study.json").exists()
    assert execute.make_executor is not no_training


def test_minimum_models_is_exact_for_the_seed() -> None:
    from transfer_influence.study.design import check_plan, design_mask, minimum_models

    config = parse_config(tiny_config_dict(**{"design.alpha": 0.25}))  # iid, 2 of 8 classes per model
    needed = minimum_models(config, 8)
    check_plan(config.with_overrides(num_models=needed), 8)
    with pytest.raises(ValueError, match=f"at least {needed}"):
        check_plan(config.with_overrides(num_models=needed - 1), 8)
    masks = np.stack([design_mask(config, i, 8) for i in range(needed)])
    assert (masks.sum(axis=0) > 0).all() and not (masks[:-1].sum(axis=0) > 0).all()


def test_cli_names_the_minimum_model_count_and_exits_2(tmp_path: Path, capsys) -> None:
    from transfer_influence.cli import main

    cfg = write_config(tmp_path / "c.yaml", tiny_config_dict(**{"design.kind": "partition", "design.alpha": 0.25}))
    assert main(["run", str(cfg), "--out", str(tmp_path / "s"), "--models", "2"]) == 2
    err = capsys.readouterr().err
    assert "num_models = 2 cannot estimate every class" in err and "--models" in err
    assert "alpha strictly between" not in err
