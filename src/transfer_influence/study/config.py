"""Study configuration: one typed, validated object read from YAML.

Everything that changes a study's numbers lives here and is hashed into ``results_key``; settings
that only change *how* the work is executed (workers, threads, how many models to train so far)
are excluded, so a study can be resumed or extended on another machine without being refused, as
long as the device type and bf16 autocast resolved there (``run_numerics``) are the study's.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetSpec(_Strict):
    """One dataset by registry name (see ``transfer_influence.data.load_dataset``) and its options."""

    dataset: str
    options: dict[str, Any] = Field(default_factory=dict)
    image_size: int | None = Field(default=None, ge=4, description="resize images to this square size")
    channels: Literal[1, 3] | None = Field(default=None, description="convert to grey (1) or RGB (3)")


class SourceConfig(_Strict):
    """The source: one or more datasets whose classes are stacked (a *mixed* source)."""

    components: list[DatasetSpec] = Field(min_length=1)
    holdout_per_class: int = Field(
        default=20, ge=1, description="examples per class kept out of training to measure source accuracy"
    )


class TargetConfig(_Strict):
    dataset: DatasetSpec
    shots_per_class: int = Field(default=10, ge=1)
    test_size: int | None = Field(default=2000, ge=1)
    split_seed: int = 0
    head_splits: int = Field(
        default=1,
        ge=1,
        description="disjoint few-shot training sets per model: one head is fitted on each and the "
        "outputs are averaged over heads, so the result does not hinge on one draw of the shots",
    )


class DesignConfig(_Strict):
    """How the class subsets S_1..S_m are drawn.

    ``kind``: ``iid`` draws independent random subsets of round(alpha·K) classes (the paper's
    design); ``complement`` pairs each subset S with its complement; ``partition`` splits the
    classes into 1/alpha groups per block of 1/alpha models (every class equally often).
    ``alpha`` is the fraction of source classes in each subset. It defines the counterfactual being
    measured: a class's influence is its effect *within a source of alpha·K classes*.
    """

    kind: Literal["iid", "complement", "partition"] = "iid"
    alpha: float = Field(default=0.5, gt=0.0, lt=1.0)

    @model_validator(mode="after")
    def _alpha_fits_kind(self) -> "DesignConfig":
        if self.kind == "complement" and abs(self.alpha - 0.5) > 1e-9:
            raise ValueError(
                f"kind 'complement' pairs a subset with its complement, so alpha must be 0.5 (got {self.alpha:g}); "
                "use kind 'partition' for balanced blocks at another alpha"
            )
        if self.kind == "partition" and abs(round(1 / self.alpha) * self.alpha - 1) > 1e-6:
            block = round(1 / self.alpha)
            raise ValueError(
                f"kind 'partition' needs 1/alpha to be a whole number (alpha = 1/2, 1/3, 1/4, ...), got "
                f"alpha={self.alpha:g}; use alpha={1 / block:.4g} or kind 'iid'"
            )
        return self


UNUSED_BY_ARCH: dict[str, tuple[str, ...]] = {"small_cnn": ("hidden_dim",), "mlp": ("channels",)}
"""Model settings an architecture ignores: left out of ``results_key``, so that they cannot make two
identical studies look foreign (and a setting added for one architecture leaves the keys of studies
of the others as they were)."""


class ModelConfig(_Strict):
    arch: Literal["small_cnn", "mlp"] = "small_cnn"
    channels: tuple[int, int, int] = (16, 32, 16)
    """small_cnn: the three convolution widths."""
    feature_dim: int = Field(default=128, ge=2)
    hidden_dim: int = Field(default=256, ge=2)
    """mlp: width of its first dense layer."""


class TrainConfig(_Strict):
    """Source training (algorithm A): Adam with a one-cycle schedule over tensors held in memory."""

    epochs: int = Field(default=2, ge=1)
    batch_size: int = Field(default=128, ge=1)
    lr: float = Field(default=3e-3, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    seeding: Literal["independent", "common", "block"] = Field(
        default="independent",
        description="'independent': a seed per model; 'common': one seed for every model; 'block': one "
        "seed per design block (common random numbers that cancel within balanced blocks)",
    )


class TransferConfig(_Strict):
    """Fixed-feature transfer: frozen backbone (BatchNorm in eval mode, source statistics) and a new
    multinomial logistic head fitted by L-BFGS on standardised features."""

    mode: Literal["fixed_feature"] = "fixed_feature"
    head_l2: float = Field(default=0.01, ge=0)
    head_max_iter: int = Field(default=200, ge=1)


class ExecutionConfig(_Strict):
    """How the work is run; not part of the results key."""

    executor: Literal["process", "serial"] = "process"
    workers: int | Literal["auto"] = "auto"
    threads_per_worker: int = Field(default=1, ge=1)
    max_attempts: int = Field(default=3, ge=1, description="tries per run before the study stops")
    device: Literal["auto", "cpu", "cuda"] = "cpu"
    amp: bool = False
    stop_reliability: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description="stop before num_models once the split-half Spearman at stop_level reaches this",
    )
    stop_level: Literal["overall", "target_class", "example"] = "target_class"
    stop_check_every: int = Field(default=100, ge=8, description="subset models between reliability checks")
    stop_after_seconds: float | None = Field(
        default=None, gt=0, description="stop starting new runs after this much wall time (a compute budget)"
    )
    run_timeout_s: float | None = Field(
        default=None,
        gt=0,
        description="a run taking longer than this counts as a failed attempt: its worker is killed and the run "
        "retried (null: no limit)",
    )

    @field_validator("workers")
    @classmethod
    def _positive_workers(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError("workers must be at least 1 or 'auto'")
        return value


class AnalysisConfig(_Strict):
    """What the report and the demo show first; not part of the results key."""

    estimator: Literal["dim", "ridge"] = "dim"
    output_kind: Literal["p_true", "correct", "raw_margin", "softmax_margin"] = "p_true"


class BaselineConfig(_Strict):
    repeats: int = Field(default=3, ge=0, description="seeds per baseline (all-source, random-init)")


class StudyConfig(_Strict):
    name: str = "study"
    seed: int = 0
    num_models: int = Field(default=100, ge=2)
    source: SourceConfig
    target: TargetConfig
    design: DesignConfig = DesignConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    transfer: TransferConfig = TransferConfig()
    baselines: BaselineConfig = BaselineConfig()
    execution: ExecutionConfig = ExecutionConfig()
    analysis: AnalysisConfig = AnalysisConfig()

    def results_key(self, numerics: dict[str, Any] | None = None) -> str:
        """Hash of every setting that changes results (not num_models, execution or analysis).

        ``numerics`` (``run_numerics``: the device type and autocast a run really uses) also change a
        run's numbers but depend on the machine, so they are passed in; a study's key always holds
        them. Without them the key compares two configs' own settings.
        """
        payload = self.model_dump(mode="json", exclude=NOT_RESULTS)
        for unused in UNUSED_BY_ARCH[self.model.arch]:
            payload["model"].pop(unused)
        if numerics is not None:
            payload["numerics"] = numerics
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    def run_numerics(self, device_type: str) -> dict[str, Any]:
        """The numerics a run of this config has on a device of type ``device_type`` ('cpu' or
        'cuda', as ``execution.device`` resolves on the machine): bf16 autocast acts on CUDA only,
        so ``execution.amp`` on a CPU changes nothing and is not recorded as on."""
        return {"device": device_type, "bf16_autocast": bool(self.execution.amp and device_type == "cuda")}

    def with_overrides(self, **changes: Any) -> "StudyConfig":
        data = self.model_dump(mode="json")
        for dotted, value in changes.items():
            node = data
            *parents, leaf = dotted.split(".")
            for part in parents:
                node = node[part]
            node[leaf] = value
        return StudyConfig.model_validate(data)


NOT_RESULTS = {"execution": True, "num_models": True, "analysis": True}
"""Settings that change how a study runs or is shown, never its runs' numbers. The two execution
settings that do change them, ``device`` and ``amp``, enter the results key through
``run_numerics``, resolved on the machine that runs the study."""


def load_config(path: str | Path) -> StudyConfig:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must hold a mapping of settings at the top level")
    return parse_config(raw, origin=str(path))


def parse_config(raw: dict[str, Any], origin: str = "config") -> StudyConfig:
    try:
        return StudyConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"{origin}: {problems}") from None


def packaged_config(name: str) -> Path:
    """Path of a config shipped inside the package (``configs/NAME.yaml``)."""
    path = Path(__file__).resolve().parent.parent / "configs" / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"no packaged config named {name!r}")
    return path
