"""The stateless worker: given a RunSpec, train, transfer, and return the outputs on the target.

A ``Worker`` holds the study's tensors in memory (built once per process) and nothing about which
runs were done: scheduling, retries and storage live in ``executors`` and ``store``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import InputError
from ..study.config import StudyConfig
from ..study.design import RunSpec
from ..study.outputs import output_kinds_from_logits, predicted_labels
from ..study.views import StudyData, TargetData
from .device import select_device
from .models import RESNET_LAYOUTS, TransferModel, build_model
from .source import (
    Batches,
    LoaderBatches,
    TensorBatches,
    TrainSettings,
    accuracy,
    to_float_images,
    train_classifier,
)
from .trainers import SourceSubset, SourceTrainer, TrainedSource, as_transfer_model, plugin_trainer
from .transfer import LinearHead, extract_features, fine_tune_logits, sgd_head_logits


@dataclass
class RunResult:
    spec: RunSpec
    outputs: dict[str, np.ndarray]
    source_accuracy: float
    target_accuracy: float
    seconds: dict[str, float] = field(default_factory=dict)
    predicted: np.ndarray | None = None
    """Predicted label of every target test example (int16; see ``outputs.predicted_labels``)."""
    extra_targets: dict[str, "TargetResult"] = field(default_factory=dict)
    """The same model transferred to each of the config's ``extra_targets``, by name."""


@dataclass
class TargetResult:
    """One target's share of a run: its outputs, predicted labels and accuracy."""

    outputs: dict[str, np.ndarray]
    predicted: np.ndarray
    target_accuracy: float


@dataclass
class _TargetTensors:
    """A target's images on the device with its labels, built once per worker."""

    data: TargetData
    train_x: torch.Tensor
    test_x: torch.Tensor

    @property
    def num_classes(self) -> int:
        return self.data.test.num_classes


class Worker:
    def __init__(self, config: StudyConfig, data: StudyData, device: torch.device | None = None) -> None:
        self.config = config
        self.data = data
        self.device = device or select_device(config.execution.device)
        self._memory_format = self._choose_memory_format()
        self._streamed = config.train.loader_workers > 0
        # Streamed sources stay uint8 in host memory; small ones live on the device as one float tensor.
        # A user's train.trainer reads its subset itself: the built-in trainer's copy is not made.
        own_copy = not self._streamed and not config.train.trainer
        self.source_x = self._images(data.source_train.images) if own_copy else None
        self.source_y = torch.from_numpy(data.source_train.labels).to(self.device)
        self.holdout_x = self._images(data.source_holdout.images)
        self.holdout_y = torch.from_numpy(data.source_holdout.labels).to(self.device)
        self.targets = {
            name: _TargetTensors(target, self._images(target.train.images), self._images(target.test.images))
            for name, target in {config.target.name: data.primary_target, **data.extra_targets}.items()
        }
        self.num_classes = data.source_train.num_classes
        self.trainer: SourceTrainer = (
            plugin_trainer(config, data, self.device) if config.train.trainer else BuiltinTrainer(self)
        )

    def _choose_memory_format(self) -> torch.memory_format:
        """channels_last on CPU (2× faster for the small CNN) and for ResNets on CUDA, where it is the
        layout tensor cores read under bf16 autocast; ``train.memory_format`` overrides."""
        requested = self.config.train.memory_format
        if requested == "channels_last":
            return torch.channels_last
        if requested == "contiguous":
            return torch.contiguous_format
        if self.device.type == "cpu" or self.config.model.arch in RESNET_LAYOUTS:
            return torch.channels_last
        return torch.contiguous_format

    def _images(self, images_u8: np.ndarray) -> torch.Tensor:
        return to_float_images(images_u8, self.device).contiguous(memory_format=self._memory_format)

    def _new_model(self, num_outputs: int) -> TransferModel:
        c, h, _ = self.data.source_train.image_shape
        m = self.config.model
        model = build_model(m.arch, max(num_outputs, 1), c, h, m.channels, m.feature_dim, m.hidden_dim, m.stem)
        return model.to(self.device, memory_format=self._memory_format)

    def run(self, spec: RunSpec) -> RunResult:
        seconds: dict[str, float] = {}
        start = time.perf_counter()
        torch.manual_seed(spec.seed)
        model, source_accuracy = self._source_model(spec)
        seconds["train"] = time.perf_counter() - start
        start = time.perf_counter()
        primary, *extras = (self._transfer(model, spec.seed, target) for target in self.targets.values())
        seconds["transfer"] = time.perf_counter() - start
        extra_results = dict(zip(list(self.targets)[1:], extras))
        return RunResult(
            spec, primary.outputs, source_accuracy, primary.target_accuracy, seconds, primary.predicted, extra_results
        )

    def _source_model(self, spec: RunSpec) -> tuple[TransferModel, float]:
        """The run's backbone from the study's trainer (built-in or ``train.trainer``), through the
        one protocol both meet, and its source accuracy."""
        classes, example_rows = self._selection(spec.mask)
        if example_rows is None:
            rows = np.flatnonzero(np.isin(self.data.source_train.labels, classes))
        else:
            rows = np.flatnonzero(example_rows)
        subset = SourceSubset(self.data, rows, classes, spec.seed, spec.kind != "random_init", self.device)
        trained = self.trainer.train(subset)
        sample = self.holdout_x[:1]
        return as_transfer_model(trained, sample, self.config.train.trainer or self.config.model.arch)

    def trained_source(self, spec: RunSpec) -> TransferModel:
        """The source model ``run(spec)`` trains (same seeding), with its source head, for callers that
        need the model itself rather than its outputs (gradient-based influence). The built-in
        trainer's only: a user's ``train.trainer`` returns a backbone without a source head."""
        if self.config.train.trainer:
            raise InputError(
                f"gradient-based influence needs the built-in trainer's source head; this study trains with "
                f"train.trainer {self.config.train.trainer!r}: use a datamodel estimator (dim, ridge) instead"
            )
        torch.manual_seed(spec.seed)
        classes, example_rows = self._selection(spec.mask)
        model = self._new_model(len(classes))
        if spec.kind != "random_init":
            model, _ = self._train_source(model, classes, spec.seed, example_rows)
        return model

    def source_images(self) -> torch.Tensor:
        """Every source training image as one float tensor on the device (built here when streamed)."""
        return self.source_x if self.source_x is not None else self._images(self.data.source_train.images)

    def _selection(self, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The source classes a model learns and, in an example-level study, the source training
        rows it trains on. A class mask selects whole classes (every row of each); an example mask
        (``design.unit: example``) selects rows, and the model's classes are those present in them."""
        if self.config.design.unit != "example":
            return np.flatnonzero(mask), None
        rows = np.asarray(mask, dtype=bool)
        if rows.size != len(self.data.source_train):
            raise ValueError(
                f"an example mask has {rows.size} entries but the source has {len(self.data.source_train)} "
                "training examples"
            )
        return np.unique(self.data.source_train.labels[rows]), rows

    def _train_source(
        self, model: TransferModel, classes: np.ndarray, seed: int, example_rows: np.ndarray | None = None
    ) -> tuple[TransferModel, float]:
        """Train on the rows of ``classes`` (or exactly ``example_rows``), labels renumbered to the
        model's ``len(classes)`` outputs; source accuracy is measured on the holdout of those classes."""
        remap = torch.full((self.num_classes,), -1, dtype=torch.long, device=self.device)
        remap[torch.from_numpy(classes).to(self.device)] = torch.arange(len(classes), device=self.device)
        if example_rows is None:
            train_rows = remap[self.source_y] >= 0
        else:
            train_rows = torch.from_numpy(example_rows).to(self.device)
        holdout_rows = remap[self.holdout_y] >= 0
        generator = torch.Generator().manual_seed(seed + 1)
        train_classifier(
            model,
            self._source_batches(remap, train_rows),
            None,
            source_settings(self.config),
            generator,
            amp=self.config.execution.amp,
        )
        source_accuracy = accuracy(model, self.holdout_x[holdout_rows], remap[self.holdout_y[holdout_rows]])
        return model, source_accuracy

    def _source_batches(self, remap: torch.Tensor, train_rows: torch.Tensor) -> Batches:
        """The subset's training examples: a DataLoader over the uint8 images when streamed."""
        labels = remap[self.source_y]
        if not self._streamed:
            return TensorBatches(self.source_x[train_rows], labels[train_rows])
        rows = train_rows.cpu().numpy()
        return LoaderBatches(
            self.data.source_train.images,
            labels.cpu().numpy(),
            self.device,
            self.config.train.loader_workers,
            self._memory_format,
            rows=np.flatnonzero(rows),
        )

    def _transfer(self, model: TransferModel, seed: int, target: _TargetTensors) -> TargetResult:
        """Fit one head per few-shot training set and average each output kind over the heads; the
        predicted labels are those of the heads' mean probabilities. Each target uses the same seeds
        and leaves ``model`` as it found it, so a target's outputs are those of a study that has it
        as its only target."""
        t = self.config.transfer
        needs_features = t.mode == "fixed_feature" and t.batchnorm == "freeze"
        if needs_features:
            train_features = extract_features(model, target.train_x)
            test_features = extract_features(model, target.test_x)
        labels = target.data.train.labels
        heads = target.data.train_heads
        num_target_classes = target.num_classes
        per_head = []
        per_head_logits = []
        for h in range(int(heads.max()) + 1):
            rows = heads == h
            generator = torch.Generator().manual_seed(seed + 2 + h)
            if needs_features and t.head == "lbfgs":
                head = LinearHead(t.head_l2, t.head_max_iter)
                head.fit(train_features[rows], labels[rows], num_target_classes)
                logits = head.logits(test_features)
            elif needs_features:
                logits = sgd_head_logits(
                    train_features[rows], labels[rows], test_features, num_target_classes,
                    transfer_settings(self.config), generator, self.device,
                )
            else:
                logits = fine_tune_logits(
                    model,
                    target.train_x[torch.from_numpy(np.flatnonzero(rows)).to(self.device)],
                    torch.from_numpy(labels[rows]).to(self.device),
                    target.test_x,
                    num_target_classes,
                    transfer_settings(self.config),
                    generator,
                    train_backbone=t.mode == "full_finetune",
                    amp=self.config.execution.amp,
                )
            per_head_logits.append(logits)
            per_head.append(output_kinds_from_logits(logits, target.data.test.labels))
        outputs = {k: np.mean([o[k] for o in per_head], axis=0).astype(np.float32) for k in per_head[0]}
        return TargetResult(outputs, predicted_labels(per_head_logits), float(outputs["correct"].mean()))


class BuiltinTrainer:
    """``model.arch``'s own trainer (algorithm A on the worker's device-resident source) behind the
    same ``SourceTrainer`` protocol a user's ``train.trainer`` meets."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def train(self, subset: SourceSubset) -> TrainedSource:
        model = self.worker._new_model(subset.num_classes)
        if not subset.pretrain:
            return TrainedSource(model)
        example_rows = None
        if self.worker.config.design.unit == "example":
            example_rows = np.zeros(len(subset.data.source_train), dtype=bool)
            example_rows[subset.rows] = True
        model, source_accuracy = self.worker._train_source(model, subset.classes, subset.seed, example_rows)
        return TrainedSource(model, source_accuracy)


def source_settings(config: StudyConfig) -> TrainSettings:
    """Algorithm A's loop settings from ``train`` (the demo's Adam/one-cycle unless the paper's recipe is set)."""
    t = config.train
    return TrainSettings(
        t.epochs,
        t.batch_size,
        t.lr,
        t.weight_decay,
        optimizer=t.optimizer,
        momentum=t.momentum,
        nesterov=t.nesterov,
        lr_schedule=t.lr_schedule,
        lr_peak_epoch=t.lr_peak_epoch,
        label_smoothing=t.label_smoothing,
        augment=t.augment,
        crop_scale=t.crop_scale,
    )


def transfer_settings(config: StudyConfig) -> TrainSettings:
    """The SGD transfer loop (sgd head, full fine-tuning): the paper trains it like the source, with a
    triangular cyclic rate; ``batchnorm: freeze`` keeps the source's BatchNorm statistics."""
    t = config.transfer
    return TrainSettings(
        t.epochs,
        t.batch_size,
        t.lr,
        t.weight_decay,
        optimizer="sgd",
        momentum=t.momentum,
        lr_schedule="triangular",
        lr_peak_epoch=t.lr_peak_epoch,
        augment=t.augment,
        frozen_batchnorm=t.batchnorm == "freeze",
    )
