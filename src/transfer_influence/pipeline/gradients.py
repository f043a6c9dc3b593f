"""Gradient models of a study: train M full-source models, transfer them, and store their projected
per-example gradients in ``STUDY/gradients/`` (one file per model, resumable), for TRAK.

The models are the study's own recipe (its config's source training and fixed-feature transfer)
on the whole source, each with a seed of its own (``study.design.gradient_model_runs``); nothing
here changes the study's runs or results.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..analysis.gradient_influence import GradientInputs
from ..errors import ConfigError, InputError
from ..estimate import ModelGradients
from ..study.config import StudyConfig
from ..study.design import RunSpec, gradient_model_runs
from ..study.gradients import GradientSettings, ProjectedGradients, gradient_file, load_gradients, save_gradients
from ..study.store import StudyStore
from ..study.views import StudyData, load_study_data

if TYPE_CHECKING:
    from ..train.worker import Worker


@dataclass(frozen=True)
class GradientRequest:
    """How many gradient models, how many projection dimensions, on which device."""

    models: int = 4
    dims: int = 512
    projection_seed: int = 0
    device: str | None = None
    """``cpu``, ``cuda`` or ``auto``; None: the study's ``execution.device``."""

    @property
    def settings(self) -> GradientSettings:
        return GradientSettings(self.dims, self.projection_seed)


def check_gradient_config(config: StudyConfig, request: GradientRequest) -> None:
    """Refuse, before any training, a study whose transfer the gradients do not describe."""
    t = config.transfer
    if (t.mode, t.head, t.batchnorm) != ("fixed_feature", "lbfgs", "freeze"):
        raise ConfigError(
            f"gradient influence (trak) takes fixed-feature transfer with the L-BFGS head and frozen BatchNorm; this "
            f"study has transfer.mode {t.mode!r}, head {t.head!r}, batchnorm {t.batchnorm!r}. Use --estimator dim "
            "or ridge on it"
        )
    if config.design.unit != "class":
        raise ConfigError("gradient influence (trak) ranks source classes; this is an example-level study "
                          "(design.unit: example): use `leaks` or --estimator dim/ridge on it")
    if request.models < 2:
        raise InputError(f"--gradient-models must be at least 2 (standard errors across models), got {request.models}")
    if request.dims < 1:
        raise InputError(f"--gradient-dims must be at least 1, got {request.dims}")


def study_gradients(
    path: Path, request: GradientRequest, say: Callable[[str], None] = lambda line: None
) -> GradientInputs:
    """Every requested gradient model's projected gradients, computing and storing only those whose
    file is missing (a file from other settings is refused, never mixed in)."""
    store = StudyStore.open(Path(path))
    config = store.config
    check_gradient_config(config, request)
    data = load_study_data(store.data_path)
    specs = gradient_model_runs(config, len(data.class_names), request.models)
    worker: Worker | None = None
    models = []
    for spec in specs:
        file = gradient_file(store.path, spec.index)
        if not file.exists():
            if worker is None:
                worker = _worker(config, data, request.device)
            started = time.perf_counter()
            save_gradients(file, _compute(worker, spec, request), request.settings)
            say(f"gradient model {spec.index + 1}/{len(specs)}: {time.perf_counter() - started:.1f} s -> {file}")
        found = load_gradients(file, request.settings, spec.seed)
        models.append(ModelGradients(found.source, found.target, found.source_weights))
    return _inputs(tuple(models), data)


def _worker(config: StudyConfig, data: StudyData, device: str | None) -> "Worker":
    """A worker on the requested device (torch is loaded only when a model must be trained)."""
    from ..train.device import select_device
    from ..train.worker import Worker

    return Worker(config, data, select_device(device or config.execution.device))


def _compute(worker: "Worker", spec: RunSpec, request: GradientRequest) -> ProjectedGradients:
    """One gradient model trained, transferred and differentiated."""
    from ..train.gradients import projected_gradients

    return projected_gradients(worker, spec, request.settings)


def _inputs(models: tuple[ModelGradients, ...], data: StudyData) -> GradientInputs:
    test = data.target_test
    return GradientInputs(
        models, data.source_train.labels, data.class_names, tuple(str(i) for i in test.example_ids),
        test.labels, data.target_class_names,
    )
