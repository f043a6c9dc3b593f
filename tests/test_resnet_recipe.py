"""The paper's recipe: ResNet-18/50, SGD with a triangular rate, on-device augmentation, SGD heads,
full fine-tuning with an explicit BatchNorm policy, streamed source batches, and the paper configs."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from transfer_influence import open_study
from transfer_influence.errors import ConfigError
from transfer_influence.pipeline.run import run_study
from transfer_influence.study.config import (
    ADDED_AT_DEFAULT,
    DesignConfig,
    ModelConfig,
    SourceConfig,
    TargetConfig,
    TrainConfig,
    TransferConfig,
    load_config,
    packaged_config,
    parse_config,
)
from transfer_influence.train.models import ResNet, SmallCNN, build_model
from transfer_influence.train.source import (
    LoaderBatches,
    TensorBatches,
    TrainSettings,
    learning_rate_schedule,
    random_resized_crop_flip,
    to_float_images,
    train_classifier,
)
from transfer_influence.train.transfer import fine_tune

from .conftest import tiny_config_dict

CPU = {"device": "cpu", "bf16_autocast": False}
FOLDER_CLASSES = ("apple", "bolt", "cup", "drum")
SIZE = 16


# --------------------------------------------------------------------------------------------
# architectures


def _parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_resnets_have_torchvisions_parameter_counts() -> None:
    """torchvision's resnet18 / resnet50 with 1000 classes: 11,689,512 and 25,557,032 parameters."""
    assert _parameters(build_model("resnet18", 1000, 3, 224, (1, 1, 1), 2, stem="imagenet")) == 11_689_512
    assert _parameters(build_model("resnet50", 1000, 3, 224, (1, 1, 1), 2, stem="imagenet")) == 25_557_032


@pytest.mark.parametrize("arch, features", [("resnet18", 512), ("resnet50", 2048)])
def test_resnet_embeds_small_images_with_the_cifar_stem(arch: str, features: int) -> None:
    model = build_model(arch, 7, 3, 16, (1, 1, 1), 2)  # stem auto: cifar below 96 px
    assert isinstance(model, ResNet) and isinstance(model.stem[0], torch.nn.Conv2d)
    assert model.stem[0].kernel_size == (3, 3) and model.stem[0].stride == (1, 1)
    model.eval()
    x = torch.zeros(2, 3, 16, 16)
    assert model.embed(x).shape == (2, features) and model(x).shape == (2, 7)


# --------------------------------------------------------------------------------------------
# learning rate and augmentation


def test_triangular_rate_equals_the_formula_at_sample_steps() -> None:
    """lr(s) = peak·s/(p·n) up to the peak epoch p, then peak·(E·n − s)/((E − p)·n), n steps per epoch."""
    peak, p, epochs, n = 0.5, 2, 16, 10
    settings = TrainSettings(epochs, 8, peak, 5e-4, optimizer="sgd", lr_schedule="triangular", lr_peak_epoch=p)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=peak, momentum=0.9)
    schedule = learning_rate_schedule(optimizer, settings, n)
    seen = {}
    for step in range(epochs * n):
        seen[step] = optimizer.param_groups[0]["lr"]
        optimizer.step()
        schedule.step()
    for step in (0, 5, 20, 21, 100, 159):
        expected = peak * step / (p * n) if step <= p * n else peak * (epochs * n - step) / ((epochs - p) * n)
        assert seen[step] == pytest.approx(expected, abs=1e-12), step
    assert max(seen.values()) == pytest.approx(peak)


def test_crop_flip_keeps_shapes_and_is_seeded() -> None:
    images = torch.rand(6, 3, 12, 12, generator=torch.Generator().manual_seed(0))
    first = random_resized_crop_flip(images, torch.Generator().manual_seed(5))
    again = random_resized_crop_flip(images, torch.Generator().manual_seed(5))
    other = random_resized_crop_flip(images, torch.Generator().manual_seed(6))
    assert first.shape == images.shape and first.dtype == images.dtype
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_a_full_crop_is_the_image_or_its_mirror() -> None:
    """With the whole image as the crop, each output is exactly its input or the input flipped, and both occur."""
    images = torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    out = random_resized_crop_flip(images, torch.Generator().manual_seed(2), scale=(1.0, 1.0), ratio=(1.0, 1.0))
    same = [torch.allclose(o, i, atol=1e-6) for o, i in zip(out, images)]
    mirrored = [torch.allclose(o, i.flip(-1), atol=1e-6) for o, i in zip(out, images)]
    assert all(s or m for s, m in zip(same, mirrored))
    assert 0 < sum(mirrored) < len(images)


# --------------------------------------------------------------------------------------------
# transfer


def _tiny_resnet() -> ResNet:
    torch.manual_seed(0)
    model = build_model("resnet18", 3, 3, 8, (1, 1, 1), 2)
    assert isinstance(model, ResNet)
    return model


def _target(n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return torch.randn(n, 3, 8, 8, generator=g) * 2 + 1, torch.randint(0, 4, (n,), generator=g)


def _sgd(frozen_batchnorm: bool) -> TrainSettings:
    return TrainSettings(2, 8, 0.1, 5e-4, optimizer="sgd", lr_schedule="triangular", lr_peak_epoch=1,
                         frozen_batchnorm=frozen_batchnorm)


def _backbone_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("head.")}


@pytest.mark.parametrize("train_backbone", [False, True])
def test_full_fine_tuning_changes_the_backbone_and_fixed_feature_does_not(train_backbone: bool) -> None:
    source = _tiny_resnet()
    before = _backbone_state(source)
    x, y = _target()
    tuned = fine_tune(source, x, y, 4, _sgd(frozen_batchnorm=True), torch.Generator().manual_seed(0), train_backbone)
    after = _backbone_state(tuned)
    weights = [k for k in before if k.endswith("weight")]
    changed = [k for k in weights if not torch.equal(before[k], after[k])]
    assert changed == (weights if train_backbone else [])
    assert all(torch.equal(before[k], v) for k, v in _backbone_state(source).items())  # source untouched
    assert tuned.head.out_features == 4


@pytest.mark.parametrize("frozen", [True, False])
def test_batchnorm_policy_freeze_keeps_the_running_statistics(frozen: bool) -> None:
    source = _tiny_resnet()
    stats = {k: v for k, v in _backbone_state(source).items() if "running_" in k}
    x, y = _target()
    tuned = fine_tune(source, x, y, 4, _sgd(frozen_batchnorm=frozen), torch.Generator().manual_seed(0), True)
    tuned_stats = _backbone_state(tuned)
    kept = [torch.equal(v, tuned_stats[k]) for k, v in stats.items()]
    assert all(kept) if frozen else not any(kept)


# --------------------------------------------------------------------------------------------
# streamed source batches


@pytest.mark.parametrize("workers", [0, 1])
def test_streamed_batches_train_the_same_model_as_batches_in_memory(workers: int) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 1, 12, 12), dtype=np.uint8)
    labels = rng.integers(0, 3, 40)
    rows = np.flatnonzero(labels != 2)
    settings = TrainSettings(2, 8, 0.05, 5e-4, optimizer="sgd", lr_schedule="triangular", augment="crop_flip")

    def trained(batches: Any) -> dict[str, torch.Tensor]:
        torch.manual_seed(0)
        model = SmallCNN(2, 1, 12, (4, 4, 4), 8)
        train_classifier(model, batches, None, settings, torch.Generator().manual_seed(9))
        return model.state_dict()

    x = to_float_images(images[rows])
    in_memory = trained(TensorBatches(x, torch.from_numpy(labels[rows])))
    streamed = trained(LoaderBatches(images, labels, torch.device("cpu"), workers, rows=rows))
    assert all(torch.equal(in_memory[k], streamed[k]) for k in in_memory)


# --------------------------------------------------------------------------------------------
# config and results key


def test_added_settings_at_their_defaults_leave_results_keys_alone() -> None:
    source = SourceConfig(components=[{"dataset": "glyphs"}])
    target = TargetConfig(dataset={"dataset": "digits"})
    sections = {"source": source, "target": target, "design": DesignConfig(), "model": ModelConfig(), "train": TrainConfig(),
                "transfer": TransferConfig()}
    for section, defaults in ADDED_AT_DEFAULT.items():
        dumped = sections[section].model_dump(mode="json")
        assert {name: dumped[name] for name in defaults} == defaults, section
    base = parse_config(tiny_config_dict()).results_key(CPU)
    spelled_out = {f"{s}.{name}": v for s, d in ADDED_AT_DEFAULT.items() for name, v in d.items()}
    assert parse_config(tiny_config_dict(**spelled_out)).results_key(CPU) == base
    assert parse_config(tiny_config_dict(**{"train.loader_workers": 4, "train.memory_format": "contiguous"})).results_key(CPU) == base
    for setting, value in [("train.optimizer", "sgd"), ("train.augment", "crop_flip"), ("transfer.head", "sgd"),
                           ("train.label_smoothing", 0.1), ("transfer.lr", 0.3), ("source.plant", {"mislabels": 1})]:
        assert parse_config(tiny_config_dict(**{setting: value})).results_key(CPU) != base, setting


def test_resnet_keys_ignore_the_small_models_widths() -> None:
    def key(**overrides: object) -> str:
        return parse_config(tiny_config_dict(**{"model.arch": "resnet18", **overrides})).results_key(CPU)

    assert key() == key(**{"model.channels": [4, 4, 4], "model.feature_dim": 7, "model.hidden_dim": 9})
    assert key() != key(**{"model.stem": "imagenet"})
    assert key() != key(**{"model.arch": "resnet50"})


def test_impossible_transfer_policies_are_refused_before_any_work() -> None:
    with pytest.raises(ConfigError, match="transfer.head: sgd"):
        parse_config(tiny_config_dict(**{"transfer.mode": "full_finetune"}))
    with pytest.raises(ConfigError, match="batchnorm"):
        parse_config(tiny_config_dict(**{"transfer.batchnorm": "train"}))
    with pytest.raises(ConfigError, match="crop_scale"):
        parse_config(tiny_config_dict(**{"train.crop_scale": [0.5, 0.1]}))


def test_paper_configs_validate_and_say_the_papers_recipe() -> None:
    paper = load_config(packaged_config("imagenet_cifar10"))
    small = load_config(packaged_config("imagenet_cifar10_small"))
    assert paper.num_models == 7540 and paper.design.alpha == 0.5 and paper.design.kind == "iid"
    t = paper.train
    assert (t.optimizer, t.momentum, t.weight_decay, t.batch_size, t.epochs) == ("sgd", 0.9, 5e-4, 1024, 16)
    assert (t.lr, t.lr_schedule, t.lr_peak_epoch, t.augment) == (0.5, "triangular", 2, "crop_flip")
    assert paper.transfer.head == "sgd" and paper.execution.device == "cuda" and paper.execution.amp
    for config in (paper, small):
        assert config.model.arch == "resnet18"
        assert config.source.components[0].dataset == "image_folder" and "root" in config.source.components[0].options
        assert config.target.dataset.dataset == "cifar10" and "root" in config.target.dataset.options
    assert small.design.alpha == 0.5 and small.train.epochs < t.epochs


# --------------------------------------------------------------------------------------------
# end to end on tiny image folders and CIFAR-format files


def _write_image_folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for k, name in enumerate(FOLDER_CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(8):
            pixels = rng.integers(0, 64, (SIZE + 4, SIZE + 2, 3)) + 60 * k
            Image.fromarray(pixels.astype(np.uint8)).save(root / name / f"{i:03d}.png")
    return root


def _write_cifar10(root: Path) -> Path:
    rng = np.random.default_rng(1)
    root.mkdir(parents=True)
    names = [f"class{k}".encode() for k in range(10)]
    with (root / "batches.meta").open("wb") as handle:
        pickle.dump({b"label_names": names}, handle)
    for file_name, per_class in [*((f"data_batch_{i}", 1) for i in range(1, 6)), ("test_batch", 1)]:
        labels = np.repeat(np.arange(10), per_class)
        data = (rng.integers(0, 64, (labels.size, 3072)) + 20 * labels[:, None]).astype(np.uint8)
        with (root / file_name).open("wb") as handle:
            pickle.dump({b"data": data, b"labels": labels.tolist()}, handle)
    return root


@pytest.fixture(scope="module")
def tiny_sources(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("resnet_data")
    return _write_image_folder(base / "folders"), _write_cifar10(base / "cifar-10-batches-py")


def _resnet_study(folders: Path, cifar: Path, **overrides: Any) -> dict[str, Any]:
    config = tiny_config_dict(**{
        "num_models": 2,
        "source.components": [{"dataset": "image_folder", "options": {"root": str(folders), "size": SIZE}}],
        "source.holdout_per_class": 2,
        "target": {"dataset": {"dataset": "cifar10", "options": {"root": str(cifar), "split": "all"},
                               "image_size": SIZE}, "shots_per_class": 2, "test_size": 20},
        "model": {"arch": "resnet18"},
        "train": {"optimizer": "sgd", "batch_size": 8, "epochs": 1, "lr": 0.1, "weight_decay": 5e-4,
                  "lr_schedule": "triangular", "lr_peak_epoch": 0.5, "augment": "crop_flip"},
        "baselines.repeats": 0,
    })
    for dotted, value in overrides.items():
        node = config
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = value
    return config


@pytest.mark.parametrize("transfer, loader_workers", [
    ({"mode": "fixed_feature", "head": "sgd", "epochs": 2, "batch_size": 8}, 0),
    ({"mode": "full_finetune", "head": "sgd", "epochs": 1, "batch_size": 8, "batchnorm": "train"}, 1),
], ids=["fixed_feature", "full_finetune_streamed"])
def test_resnet18_study_runs_end_to_end_on_image_folders(
    tiny_sources: tuple[Path, Path],
    tmp_path: Path,
    transfer: dict[str, Any],
    loader_workers: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import transfer_influence.train.worker as worker_module

    calls: list[tuple[str, Any]] = []

    def spy(name: str) -> Any:
        real = getattr(worker_module, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls.append((name, args))
            return real(*args, **kwargs)

        return wrapper

    for name in ("train_classifier", "sgd_head_logits", "fine_tune_logits"):
        monkeypatch.setattr(worker_module, name, spy(name))
    folders, cifar = tiny_sources
    config = parse_config(_resnet_study(folders, cifar, transfer=transfer, **{"train.loader_workers": loader_workers}))
    run_study(config, tmp_path / "study", progress=False)
    sources = [args for name, args in calls if name == "train_classifier"]
    assert len(sources) == 2 and all(isinstance(a[0], ResNet) and a[3].optimizer == "sgd" for a in sources)
    assert all(isinstance(a[1], LoaderBatches if loader_workers else TensorBatches) for a in sources)
    expected = "fine_tune_logits" if transfer["mode"] == "full_finetune" else "sgd_head_logits"
    assert sum(name == expected for name, _ in calls) == 2
    results = open_study(tmp_path / "study")
    assert results.masks.shape == (2, len(FOLDER_CLASSES))
    assert results.masks.sum(axis=1).tolist() == [2, 2]  # alpha 0.5 of 4 classes
    for kind in ("p_true", "correct", "raw_margin", "softmax_margin"):
        values = results.outputs(kind)
        assert values.shape == (2, 20) and np.isfinite(values).all()
    p_true = results.outputs("p_true")
    assert ((p_true >= 0) & (p_true <= 1)).all()
    assert not np.allclose(p_true[0], p_true[1])  # two different subsets, two different models


def test_worker_builds_the_configured_model() -> None:
    """The worker passes every model setting on: the MLP's hidden_dim (which the results key holds)
    and the ResNet stem."""
    from transfer_influence.study.views import build_study_data
    from transfer_influence.train.worker import Worker

    mlp = parse_config(tiny_config_dict(**{"model.arch": "mlp", "model.hidden_dim": 24}))
    worker = Worker(mlp, build_study_data(mlp))
    assert worker._new_model(3).features[1].out_features == 24
    resnet = mlp.with_overrides(**{"model.arch": "resnet18", "model.stem": "imagenet"})
    model = Worker(resnet, worker.data)._new_model(3)
    assert isinstance(model, ResNet) and model.stem[0].kernel_size == (7, 7)
