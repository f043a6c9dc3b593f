"""Example-level designs (``design.unit: example``): subsets of single source examples, drawn,
trained, stored bit-packed, consolidated, resumed and estimated like class subsets."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import tiny_config_dict
from transfer_influence.analysis.rankings import overall_influence
from transfer_influence.cli import EXIT_USAGE, main
from transfer_influence.errors import PlanError
from transfer_influence.pipeline.run import run_study
from transfer_influence.study.config import StudyConfig, parse_config
from transfer_influence.study.design import RunSpec, check_plan, design_mask, minimum_models, subset_runs
from transfer_influence.study.integrity import pack_mask, run_mask, unpack_mask
from transfer_influence.study.results import open_study
from transfer_influence.study.views import build_study_data, load_study_data
from transfer_influence.train import worker as worker_module
from transfer_influence.train.worker import Worker

CPU = {"device": "cpu", "bf16_autocast": False}
EXAMPLES = 96
"""Source training examples of the example study: 8 glyph classes × (16 images − 4 held out)."""


def example_config(**overrides: object) -> StudyConfig:
    settings = {
        "source.components": [
            {"dataset": "glyphs", "options": {"classes": ["A", "B", "C", "D", "E", "F", "0", "1"],
                                              "images_per_class": 16, "max_fonts": 12}}
        ],
        "design.unit": "example",
        "num_models": 12,
        **overrides,
    }
    return parse_config(tiny_config_dict(**settings))


# --------------------------------------------------------------------------------------------
# designs and masks


def test_example_masks_are_rebuilt_from_seed_and_index() -> None:
    config = example_config()
    first = np.stack([design_mask(config, i, EXAMPLES) for i in range(20)])
    again = np.stack([s.mask for s in subset_runs(config, EXAMPLES, range(20))])
    assert np.array_equal(first, again)
    assert (first.sum(axis=1) == EXAMPLES // 2).all()  # exactly alpha·L examples per subset
    assert len({row.tobytes() for row in first}) == 20
    other_seed = np.stack([design_mask(config.with_overrides(seed=25), i, EXAMPLES) for i in range(20)])
    assert not np.array_equal(first, other_seed)


def test_partition_over_examples_gives_disjoint_blocks() -> None:
    config = example_config(**{"design.kind": "partition", "design.alpha": 0.25})
    block = np.stack([design_mask(config, i, EXAMPLES) for i in range(4)])
    assert (block.sum(axis=0) == 1).all()  # every example in exactly one model of the block
    assert (block.sum(axis=1) == EXAMPLES // 4).all()


@pytest.mark.parametrize("length", [1, 7, 8, 9, 17, 96, 1001])
def test_packed_masks_round_trip(length: int) -> None:
    mask = np.random.default_rng(length).random(length) < 0.3
    packed = pack_mask(mask)
    assert packed.dtype == np.uint8 and packed.size == (length + 7) // 8
    assert np.array_equal(unpack_mask(packed, length), mask)
    assert np.array_equal(run_mask({"mask_packed": packed}, {"mask_length": length}), mask)


def test_default_unit_leaves_class_study_keys_alone() -> None:
    base = parse_config(tiny_config_dict())
    assert base.design.unit == "class"
    assert parse_config(tiny_config_dict(**{"design.unit": "class"})).results_key(CPU) == base.results_key(CPU)
    assert parse_config(tiny_config_dict(**{"design.unit": "example"})).results_key(CPU) != base.results_key(CPU)


# --------------------------------------------------------------------------------------------
# bad input, refused before any training


def test_alpha_below_one_example_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    config = example_config(**{"design.alpha": 0.005})
    with pytest.raises(PlanError, match=r"fewer than one example.*design.alpha"):
        run_study(config, tmp_path / "study", progress=False, stream=io.StringIO())
    assert not (tmp_path / "study" / "study.json").exists()


def test_too_few_models_for_every_example_is_refused_with_the_count_needed() -> None:
    config = example_config(num_models=3)
    needed = minimum_models(config, EXAMPLES)
    with pytest.raises(PlanError, match=rf"source examples are in no subset.*at least {needed} models"):
        check_plan(config, EXAMPLES)
    check_plan(config.with_overrides(num_models=needed), EXAMPLES)


def test_complement_over_an_odd_number_of_examples_is_refused() -> None:
    with pytest.raises(PlanError, match="even number"):
        check_plan(example_config(**{"design.kind": "complement"}), 95)


# --------------------------------------------------------------------------------------------
# the worker trains on exactly the selected examples


def test_worker_trains_on_the_selected_examples_with_labels_of_the_classes_present(monkeypatch: pytest.MonkeyPatch) -> None:
    config = example_config()
    data = build_study_data(config)
    labels = data.source_train.labels
    mask = np.zeros(len(data.source_train), dtype=bool)
    mask[np.flatnonzero(labels == 2)[:3]] = True
    mask[np.flatnonzero(labels == 5)[:4]] = True
    seen: dict[str, torch.Tensor] = {}

    def capture(model, batches, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen["images"], seen["labels"], seen["outputs"] = batches.images, batches.labels, model.head.out_features

    monkeypatch.setattr(worker_module, "train_classifier", capture)
    worker = Worker(config, data, torch.device("cpu"))
    worker.run(RunSpec("subset", 0, mask, seed=1))
    assert seen["outputs"] == 2  # the model's classes are the two present in its examples
    assert seen["labels"].tolist() == [0] * 3 + [1] * 4
    assert torch.equal(seen["images"], worker.source_x[torch.from_numpy(mask)])


# --------------------------------------------------------------------------------------------
# a whole example study: store, consolidation, resume, influence, refusals


@pytest.fixture(scope="module")
def example_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    study = tmp_path_factory.mktemp("example-study") / "study"
    run_study(example_config(), study, progress=False, stream=io.StringIO())
    return study


def test_example_study_stores_bit_packed_masks(example_study: Path) -> None:
    config = example_config()
    with np.load(example_study / "runs" / "subset-000003.npz") as run:
        assert "mask" not in run.files and run["mask_packed"].dtype == np.uint8
        record = json.loads(str(run["record"]))
        assert record["mask_length"] == EXAMPLES
        assert np.array_equal(unpack_mask(run["mask_packed"], EXAMPLES), design_mask(config, 3, EXAMPLES))
    with np.load(example_study / "runs" / "all_source-000000.npz") as run:
        assert unpack_mask(run["mask_packed"], EXAMPLES).all()
    packed = np.load(example_study / "consolidated" / "masks_packed.npy")
    assert packed.dtype == np.uint8 and packed.shape == (config.num_models, EXAMPLES // 8)
    assert not (example_study / "consolidated" / "masks.npy").exists()


def test_open_study_gives_example_masks_and_ids(example_study: Path) -> None:
    config = example_config()
    results = open_study(example_study)
    data = load_study_data(example_study / "data.npz")
    assert results.unit_kind == "example"
    assert results.unit_names == tuple(data.source_train.example_ids.astype(str).tolist())
    assert results.source_class_names == data.class_names
    assert results.masks.dtype == np.bool_ and results.masks.shape == (config.num_models, EXAMPLES)
    expected = np.stack([design_mask(config, int(i), EXAMPLES) for i in results.run_indices])
    assert np.array_equal(results.masks, expected)


def test_example_influence_is_the_difference_of_means(example_study: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    results = open_study(example_study)
    y = np.asarray(results.outputs("p_true"), dtype=np.float64).mean(axis=1)
    masks = results.masks
    direct = np.array([y[masks[:, k]].mean() - y[~masks[:, k]].mean() for k in range(masks.shape[1])])
    influence = overall_influence(results, "p_true", "dim")
    assert influence.unit_kind == "example" and influence.unit_names == results.unit_names
    np.testing.assert_allclose(influence.values[:, 0], direct, rtol=0, atol=1e-6)  # float32 outputs

    assert main(["influence", str(example_study), "--kind", "p_true", "--estimator", "dim", "--out", str(tmp_path / "dim")]) == 0
    printed = capsys.readouterr().out
    assert f"{EXAMPLES} source examples" in printed
    best = results.unit_names[int(np.argmax(direct))]
    assert best in printed
    assert main(["influence", str(example_study), "--kind", "p_true", "--estimator", "ridge", "--out", str(tmp_path / "ridge")]) == 0
    assert (tmp_path / "ridge" / "overall_p_true_ridge.csv").exists()


@pytest.mark.parametrize(
    "command",
    [
        ["whatif", "--remove", "A"],
        ["handpicked", "--serial", "--quiet"],
        ["verify", "--summary", "--serial", "--quiet"],
        ["project", "--source-class", "A"],
        ["explain"],
    ],
)
def test_class_level_commands_refuse_an_example_study(example_study: Path, command: list[str], capsys) -> None:  # type: ignore[no-untyped-def]
    before = sorted(p.name for p in example_study.iterdir())
    assert main([command[0], str(example_study), *command[1:]]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "example-level study" in err and "design.unit" in err
    assert sorted(p.name for p in example_study.iterdir()) == before


def test_example_study_resumes_with_the_same_masks(example_study: Path, tmp_path: Path) -> None:
    study = tmp_path / "resumed"
    first = example_config(num_models=12)
    run_study(first, study, progress=False, stream=io.StringIO())
    kept = {p.name: p.stat().st_mtime_ns for p in (study / "runs").glob("subset-*.npz")}
    report = run_study(first.with_overrides(num_models=14), study, progress=False, stream=io.StringIO())
    assert report.skipped == 12 + 2 and len(report.executed) == 2
    assert {p.name: p.stat().st_mtime_ns for p in (study / "runs").glob("subset-*.npz") if p.name in kept} == kept
    results = open_study(study)
    expected = np.stack([design_mask(first, i, EXAMPLES) for i in range(14)])
    assert np.array_equal(results.masks, expected)
    reference = open_study(example_study)
    np.testing.assert_array_equal(results.masks[:12], reference.masks)


def test_status_and_work_know_the_example_units(example_study: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["status", str(example_study)]) == 0
    assert "missing" in capsys.readouterr().out
    assert main(["work", str(example_study), "--index", "5"]) == 0
    assert "already done" in capsys.readouterr().out


def test_a_packed_mask_of_the_wrong_length_is_a_bad_file(example_study: Path, tmp_path: Path) -> None:
    from transfer_influence.study.integrity import check_run_file

    with np.load(example_study / "runs" / "subset-000001.npz") as run:
        arrays = {name: run[name] for name in run.files}
    record = json.loads(str(arrays["record"]))
    key = record["results_key"]
    record["mask_length"] = EXAMPLES + 8
    arrays["record"] = np.asarray(json.dumps(record))
    copy = tmp_path / "subset-000001.npz"
    np.savez(copy, **arrays)
    check = check_run_file(copy, {key})
    assert not check.ok and "packed mask" in str(check.problem)


def test_plan_refuses_an_example_level_config(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    import yaml

    path = tmp_path / "example.yaml"
    path.write_text(yaml.safe_dump(example_config().model_dump(mode="json")))
    assert main(["plan", str(path), "--out", str(tmp_path / "pilots")]) == EXIT_USAGE
    assert "design.unit: example" in capsys.readouterr().err
    assert not (tmp_path / "pilots").exists()
