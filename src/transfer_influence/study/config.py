"""Study configuration: one typed, validated object read from YAML.

Everything that changes a study's numbers lives here and is hashed into ``results_key``; settings
that only change *how* the work is executed (workers, threads, how many models to train so far)
are excluded, so a study can be resumed or extended on another machine without being refused, as
long as the device type and bf16 autocast resolved there (``run_numerics``) are the study's.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from ..data import check_dataset
from ..data.plugins import is_import_path, plugin_version, resolve
from ..errors import ConfigError


STORED = "stored"
"""Validation context key of a config read back from a study (``stored_config``): its plugins are not
imported, so a finished study opens for analysis where its plugins are not installed."""


def _imports_plugins(info: ValidationInfo) -> bool:
    return not (isinstance(info.context, dict) and info.context.get(STORED))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetSpec(_Strict):
    """One dataset by registry name (see ``transfer_influence.data.load_dataset``) and its options."""

    dataset: str
    options: dict[str, Any] = Field(default_factory=dict)
    image_size: int | None = Field(default=None, ge=4, description="resize images to this square size")
    channels: Literal[1, 3] | None = Field(default=None, description="convert to grey (1) or RGB (3)")

    @model_validator(mode="after")
    def _known_dataset(self, info: ValidationInfo) -> "DatasetSpec":
        """A misspelt dataset or option (or a user loader that does not import) is refused when the
        config is read, naming the close names, rather than failing inside ``run`` once the study
        directory and its lock exist."""
        if _imports_plugins(info) or not is_import_path(self.dataset):
            check_dataset(self.dataset, self.options)
        return self


class PlantConfig(_Strict):
    """Faults planted in the source training set, the ground truth of leak detection (see
    ``transfer_influence.data.planted``): copies of primary-target test images under the source class
    of the same name (exact or lightly augmented), and source images of those classes relabelled."""

    leaks_exact: int = Field(default=0, ge=0, description="exact copies of target test images added to the source")
    leaks_augmented: int = Field(default=0, ge=0, description="lightly augmented copies of other target test images")
    mislabels: int = Field(default=0, ge=0, description="source images of classes the target shares, given another shared class's label")
    seed: int = Field(default=0, ge=0, description="which images are copied or relabelled")


class SourceConfig(_Strict):
    """The source: one or more datasets whose classes are stacked (a *mixed* source)."""

    components: list[DatasetSpec] = Field(min_length=1)
    holdout_per_class: int = Field(
        default=20, ge=1, description="examples per class kept out of training to measure source accuracy"
    )
    plant: PlantConfig | None = Field(
        default=None, description="planted leaks and mislabels in the source training set (a ground-truth demo)"
    )


PRIMARY_TARGET_NAME = "main"
"""The primary target's name unless ``target.name`` says otherwise."""
TARGET_NAME_PATTERN = re.compile(r"[a-z0-9](?:[a-z0-9-]|_(?!_)){0,39}")
"""Target names become folder names and run-file member names (``output__<name>__<kind>``): lower-case
letters, digits, ``-`` and single ``_``, starting with a letter or digit, at most 40 characters, so a
name is the same file on every file system and never splits a member name."""


def check_target_name(name: str) -> str:
    """``name`` when it is a valid target name, else a ValueError saying what a name may hold."""
    if not TARGET_NAME_PATTERN.fullmatch(name):
        raise ValueError(
            f"target name {name!r} is not allowed: use 1-40 lower-case letters, digits, '-' or '_' (no '__'), "
            "starting with a letter or digit, e.g. 'fashion' or 'cifar10'"
        )
    return name


class TargetConfig(_Strict):
    dataset: DatasetSpec
    name: str = Field(
        default=PRIMARY_TARGET_NAME,
        description="the target's name in `--target NAME` and in file names; it labels the target and never "
        "changes its numbers, so it is not part of the results key",
    )
    test_dataset: DatasetSpec | None = Field(
        default=None,
        description="a separate dataset used whole as the test set (a user's fixed test split); the few-shot "
        "training images are then drawn from `dataset` alone. Its classes must be `dataset`'s, in the same order",
    )
    shots_per_class: int = Field(default=10, ge=1)
    test_size: int | None = Field(default=2000, ge=1)
    split_seed: int = 0
    head_splits: int = Field(
        default=1,
        ge=1,
        description="disjoint few-shot training sets per model: one head is fitted on each and the "
        "outputs are averaged over heads, so the result does not hinge on one draw of the shots",
    )

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        return check_target_name(value)

    @model_validator(mode="before")
    @classmethod
    def _one_test_set(cls, data: Any) -> Any:
        """A fixed test split is used whole (``test_size`` null): a number beside it would silently
        drop part of it."""
        if isinstance(data, dict) and data.get("test_dataset") is not None:
            if data.get("test_size") is not None:
                raise ValueError(
                    "test_dataset is used whole as the test set, so test_size does not apply; remove test_size "
                    "(or remove test_dataset to draw the test set from dataset)"
                )
            data = {**data, "test_size": None}
        return data


class DesignConfig(_Strict):
    """How the class subsets S_1..S_m are drawn.

    ``kind``: ``iid`` draws independent random subsets of round(alpha·K) classes (the paper's
    design); ``complement`` pairs each subset S with its complement; ``partition`` splits the
    classes into 1/alpha groups per block of 1/alpha models (every class equally often).
    ``alpha`` is the fraction of source classes in each subset. It defines the counterfactual being
    measured: a class's influence is its effect *within a source of alpha·K classes*.
    ``unit: example`` draws the same designs over the L source training examples instead of the K
    classes (alpha·L examples per subset); a model's classes are those present in its examples.
    """

    kind: Literal["iid", "complement", "partition"] = "iid"
    alpha: float = Field(default=0.5, gt=0.0, lt=1.0)
    unit: Literal["class", "example"] = Field(
        default="class",
        description="what a subset is drawn over: 'class' (whole source classes, the paper's class-level "
        "study) or 'example' (single source training examples, for example-level datamodels); alpha is the "
        "fraction of that unit in each subset",
    )

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


UNUSED_BY_ARCH: dict[str, tuple[str, ...]] = {
    "small_cnn": ("hidden_dim", "stem"),
    "mlp": ("channels", "stem"),
    "resnet18": ("channels", "feature_dim", "hidden_dim"),
    "resnet50": ("channels", "feature_dim", "hidden_dim"),
}
"""Model settings an architecture ignores: left out of ``results_key``, so that they cannot make two
identical studies look foreign (and a setting added for one architecture leaves the keys of studies
of the others as they were)."""


class ModelConfig(_Strict):
    arch: Literal["small_cnn", "mlp", "resnet18", "resnet50"] = "small_cnn"
    stem: Literal["auto", "cifar", "imagenet"] = Field(
        default="auto",
        description="resnet18/resnet50: 'imagenet' (7×7/2 convolution and max-pool, for ~224 px), 'cifar' "
        "(one 3×3/1 convolution, for 32-64 px), 'auto': cifar below 96 px, imagenet otherwise",
    )
    channels: tuple[int, int, int] = (16, 32, 16)
    """small_cnn: the three convolution widths."""
    feature_dim: int = Field(default=128, ge=2)
    hidden_dim: int = Field(default=256, ge=2)
    """mlp: width of its first dense layer."""


class TrainConfig(_Strict):
    """Source training (algorithm A). The default is Adam with a one-cycle schedule over tensors held
    in memory (the demo's); the paper's recipe (App. A.1) is ``optimizer: sgd, momentum: 0.9,
    weight_decay: 5e-4, batch_size: 1024, epochs: 16, lr: 0.5, lr_schedule: triangular,
    lr_peak_epoch: 2, augment: crop_flip``."""

    epochs: int = Field(default=2, ge=1)
    batch_size: int = Field(default=128, ge=1)
    lr: float = Field(default=3e-3, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    trainer: str | None = Field(
        default=None,
        description="'package.module:factory' (or 'path/file.py:factory'): a user's source trainer, built once "
        "per worker as factory(config, data, device) and called with each run's source subset "
        "(transfer_influence.train.trainers.SourceTrainer); null: the built-in trainer of model.arch",
    )
    seeding: Literal["independent", "common", "block"] = Field(
        default="independent",
        description="'independent': a seed per model; 'common': one seed for every model; 'block': one "
        "seed per design block (common random numbers that cancel within balanced blocks)",
    )
    optimizer: Literal["adam", "sgd"] = Field(default="adam", description="sgd: with momentum, the paper's")
    momentum: float = Field(default=0.9, ge=0, lt=1, description="sgd only")
    nesterov: bool = Field(default=False, description="sgd only: Nesterov momentum")
    lr_schedule: Literal["one_cycle", "triangular"] = Field(
        default="one_cycle",
        description="one_cycle: torch's OneCycleLR peaking at lr; triangular: the paper's cyclic rate, linear "
        "from 0 to lr at lr_peak_epoch, then linear to 0 at the last step",
    )
    lr_peak_epoch: float = Field(default=2.0, gt=0, description="triangular only: the (fractional) epoch of the peak")
    label_smoothing: float = Field(default=0.0, ge=0, lt=1, description="of the cross-entropy (the paper uses none)")
    augment: Literal["none", "crop_flip"] = Field(
        default="none",
        description="crop_flip: RandomResizedCrop (scale crop_scale, aspect 3/4-4/3) back to the image size and a "
        "horizontal flip, drawn per image from the run's seed and applied on the training device",
    )
    crop_scale: tuple[float, float] = Field(default=(0.08, 1.0), description="crop_flip: crop area range")
    loader_workers: int = Field(
        default=0,
        ge=0,
        description="0: the source images live on the training device as one tensor (fast for small data); N>0: "
        "a DataLoader with N worker processes and pinned memory streams uint8 batches to the device. Both "
        "paths draw the same batches, so this is not part of the results key",
    )
    memory_format: Literal["auto", "channels_last", "contiguous"] = Field(
        default="auto",
        description="layout of image tensors and conv weights: auto is channels_last on CPU and for ResNets on "
        "CUDA (the tensor-core layout under bf16 autocast). Not part of the results key",
    )

    @field_validator("trainer")
    @classmethod
    def _trainer_imports(cls, value: str | None, info: ValidationInfo) -> str | None:
        """A trainer that does not import is refused when the config is read, before any training."""
        if value is not None and _imports_plugins(info):
            resolve(value, "train.trainer")
        return value

    @model_validator(mode="after")
    def _crop_scale_is_a_range(self) -> "TrainConfig":
        low, high = self.crop_scale
        if not 0 < low <= high <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < low <= high <= 1, got {list(self.crop_scale)}")
        return self


class TransferConfig(_Strict):
    """Transfer to the target. ``fixed_feature`` (default): the backbone is frozen and a new head is fitted
    on its features; ``full_finetune``: the whole network (with a new head) is trained on the target by
    SGD. ``head: lbfgs`` (default) fits a multinomial logistic head by L-BFGS on standardised features (a
    deterministic closed problem); ``head: sgd`` trains it as the paper does, by SGD with a triangular
    cyclic rate (``epochs``, ``batch_size``, ``lr``, ``lr_peak_epoch``, ``momentum``, ``weight_decay``).
    ``batchnorm``: ``freeze`` keeps the source model's running statistics and uses them (eval mode) on
    target data; ``train`` lets target batches normalise themselves and update the statistics, as the
    paper's code does (its footnote 6). Fixed-feature with ``batchnorm: train`` needs ``head: sgd``."""

    mode: Literal["fixed_feature", "full_finetune"] = "fixed_feature"
    head_l2: float = Field(default=0.01, ge=0, description="lbfgs head only")
    head_max_iter: int = Field(default=200, ge=1, description="lbfgs head only")
    head: Literal["lbfgs", "sgd"] = "lbfgs"
    batchnorm: Literal["freeze", "train"] = "freeze"
    epochs: int = Field(default=16, ge=1, description="sgd head / full_finetune")
    batch_size: int = Field(default=1024, ge=1, description="sgd head / full_finetune")
    lr: float = Field(default=0.1, gt=0, description="sgd head / full_finetune: peak of the triangular rate")
    lr_peak_epoch: float = Field(default=2.0, gt=0, description="sgd head / full_finetune")
    momentum: float = Field(default=0.9, ge=0, lt=1, description="sgd head / full_finetune")
    weight_decay: float = Field(default=5e-4, ge=0, description="sgd head / full_finetune")
    augment: Literal["none", "crop_flip"] = Field(default="none", description="full_finetune: as train.augment")

    @model_validator(mode="after")
    def _policy_is_implementable(self) -> "TransferConfig":
        if self.mode == "full_finetune" and self.head == "lbfgs":
            raise ValueError(
                "mode 'full_finetune' trains the whole network by SGD; set transfer.head: sgd (lbfgs fits only a "
                "head on fixed features)"
            )
        if self.mode == "fixed_feature" and self.batchnorm == "train" and self.head == "lbfgs":
            raise ValueError(
                "batchnorm 'train' changes the features batch by batch, which the lbfgs head (fitted once on fixed "
                "features) cannot follow; set transfer.head: sgd or batchnorm: freeze"
            )
        return self


class RayConfig(_Strict):
    """The Ray executor (``execution.executor: ray``): one Ray task per run, each writing its run file
    into the study directory itself, so the study directory must be on storage every node sees."""

    address: str | None = Field(
        default=None,
        description="HOST:PORT of a running Ray cluster's head node (its GCS port, 6379 by default), or 'auto' "
        "for one started on this machine with `ray start --head`; null starts a local Ray for this study and "
        "shuts it down afterwards",
    )
    num_cpus: float = Field(default=1, gt=0, description="CPUs Ray reserves for each run's task")
    num_gpus: float = Field(default=0, ge=0, description="GPUs per run's task; a fraction (0.25) packs runs on a GPU")
    object_store_memory_mb: int = Field(
        default=200, ge=80, description="object store of a local Ray (runs send only small summaries through it)"
    )
    max_retries: int = Field(
        default=3, ge=0, description="times Ray itself restarts a run whose worker process or node died, before the "
        "run counts as one failed attempt (execution.max_attempts)",
    )

    @field_validator("address")
    @classmethod
    def _host_and_port(cls, value: str | None) -> str | None:
        if value is None or value == "auto":
            return value
        host, sep, port = value.rpartition(":")
        if not sep or not host or "/" in value or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(
                f"{value!r} is not HOST:PORT (the Ray head node's address, e.g. 10.0.0.5:6379) or 'auto'; "
                "leave it out to start a local Ray"
            )
        return value


class SlurmConfig(_Strict):
    """The SLURM executor (``execution.executor: slurm``): one job array over the study's missing runs,
    each array task running ``transfer-influence work STUDY --kind K --index I``'s code. The study
    directory must be on a file system shared by the login and the compute nodes."""

    partition: str | None = Field(default=None, description="#SBATCH --partition (null: the cluster's default)")
    account: str | None = Field(default=None, description="#SBATCH --account (null: the user's default)")
    cpus_per_task: int = Field(default=1, ge=1, description="CPUs of each array task (one run)")
    gpus_per_task: int = Field(default=0, ge=0, description="GPUs of each array task")
    mem_gb: float = Field(default=4.0, gt=0, description="memory of each array task")
    time_min: int = Field(default=60, ge=1, description="time limit of each array task, minutes")
    array_parallelism: int = Field(default=64, ge=1, description="array tasks running at once (#SBATCH --array=...%N)")
    max_array_size: int = Field(
        default=1000, ge=1, description="runs per job array; more missing runs are split into several arrays "
        "(keep it at or below the cluster's MaxArraySize)",
    )
    setup: list[str] = Field(
        default_factory=list, description="shell lines run before each task (module load, source .venv/bin/activate)"
    )
    additional: dict[str, str] = Field(
        default_factory=dict, description="further #SBATCH options by name, e.g. {qos: high, constraint: a100}"
    )
    log_dir: str | None = Field(
        default=None, description="where submitit keeps job scripts, pickles and logs (null: STUDY/slurm)"
    )
    poll_s: float = Field(default=30.0, gt=0, description="seconds between the driver's checks of the array")
    cluster: Literal["slurm", "debug"] = Field(
        default="slurm", description="debug: run the array's tasks one after another in this process (submitit's "
        "DebugExecutor), to check a study before submitting it",
    )


class ExecutionConfig(_Strict):
    """How the work is run; not part of the results key."""

    executor: Literal["process", "serial", "ray", "slurm"] = "process"
    workers: int | Literal["auto"] = "auto"
    threads_per_worker: int = Field(default=1, ge=1)
    max_attempts: int = Field(default=3, ge=1, description="tries per run before the study stops")
    device: Literal["auto", "cpu", "cuda"] = "cpu"
    gpus: list[str] | None = Field(
        default=None,
        description="process executor: GPU ids handed out one per worker process as CUDA_VISIBLE_DEVICES "
        "(null: every visible GPU when the device is CUDA; none on CPU)",
    )
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
    ray: RayConfig = RayConfig()
    slurm: SlurmConfig = SlurmConfig()

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
    extra_targets: list[TargetConfig] = Field(
        default_factory=list,
        description="further targets, each with its own unique name: every source model is trained once and "
        "transferred to the primary target and to each of these, and its outputs are stored per target",
    )
    design: DesignConfig = DesignConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    transfer: TransferConfig = TransferConfig()
    baselines: BaselineConfig = BaselineConfig()
    execution: ExecutionConfig = ExecutionConfig()
    analysis: AnalysisConfig = AnalysisConfig()

    @model_validator(mode="after")
    def _unique_target_names(self) -> "StudyConfig":
        names = self.target_names
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(
                f"target names must be unique, {', '.join(map(repr, repeated))} is used more than once "
                f"(the primary target is named {self.target.name!r} unless target.name says otherwise); "
                "give each entry of extra_targets its own name"
            )
        return self

    @property
    def target_names(self) -> list[str]:
        """The primary target's name, then each extra target's, in the config's order."""
        return [self.target.name, *(t.name for t in self.extra_targets)]

    def target_config(self, name: str) -> TargetConfig:
        """The settings of the target named ``name`` (KeyError if the study has none of that name)."""
        for target in (self.target, *self.extra_targets):
            if target.name == name:
                return target
        raise KeyError(name)

    def results_key(self, numerics: dict[str, Any] | None = None) -> str:
        """Hash of every setting that changes results (not num_models, execution or analysis).

        ``numerics`` (``run_numerics``: the device type and autocast a run really uses) also change a
        run's numbers but depend on the machine, so they are passed in; a study's key always holds
        them. Without them the key compares two configs' own settings.
        """
        payload = self.model_dump(mode="json", exclude=NOT_RESULTS)
        for unused in UNUSED_BY_ARCH[self.model.arch]:
            payload["model"].pop(unused, None)
        for section, names in {**EXECUTION_ONLY, **LABELS_ONLY}.items():
            for name in names:
                payload[section].pop(name, None)
        if payload.get("extra_targets") == ADDED_TOP_LEVEL_AT_DEFAULT["extra_targets"]:
            del payload["extra_targets"]
        _drop_added_settings_at_defaults(payload)
        for extra in payload.get("extra_targets", []):
            if extra.get("test_dataset") is None:
                extra.pop("test_dataset", None)
        plugins = self.plugin_versions()
        if plugins:
            payload["plugins"] = plugins
        if numerics is not None:
            payload["numerics"] = numerics
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    def plugin_paths(self) -> list[str]:
        """Every import path the config names (datasets and the trainer), in a fixed order."""
        specs = [*self.source.components]
        for target in (self.target, *self.extra_targets):
            specs += [target.dataset] + ([target.test_dataset] if target.test_dataset is not None else [])
        names = [spec.dataset for spec in specs] + ([self.train.trainer] if self.train.trainer else [])
        return sorted({name for name in names if is_import_path(name)})

    def plugin_versions(self) -> dict[str, str]:
        """Import path → version of each plugin the config names: part of the results key, so two
        plugins (or two versions of one) never share a study."""
        return {path: plugin_version(path) for path in self.plugin_paths()}

    def run_numerics(self, device_type: str) -> dict[str, Any]:
        """The numerics a run of this config has on a device of type ``device_type`` ('cpu' or
        'cuda', as ``execution.device`` resolves on the machine): bf16 autocast acts on CUDA only,
        so ``execution.amp`` on a CPU changes nothing and is not recorded as on."""
        return {"device": device_type, "bf16_autocast": bool(self.execution.amp and device_type == "cuda")}

    def with_overrides(self, **changes: Any) -> "StudyConfig":
        """This config with dotted settings replaced, checked like a config file: a bad value (e.g.
        ``num_models=1`` from ``--models 1``) is a ``ConfigError`` naming the setting."""
        data = self.model_dump(mode="json")
        for dotted, value in changes.items():
            node = data
            *parents, leaf = dotted.split(".")
            for part in parents:
                node = node[part]
            node[leaf] = value
        try:
            return StudyConfig.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(f"command line: {validation_problems(exc)}") from None


NOT_RESULTS = {"execution": True, "num_models": True, "analysis": True}
"""Settings that change how a study runs or is shown, never its runs' numbers. The two execution
settings that do change them, ``device`` and ``amp``, enter the results key through
``run_numerics``, resolved on the machine that runs the study."""


EXECUTION_ONLY: dict[str, tuple[str, ...]] = {"train": ("loader_workers", "memory_format")}
"""Settings inside results sections that change how a run is computed, not its numbers (the streamed
source draws the same batches as the one in memory; a memory layout changes only rounding, like the
choice of convolution algorithm): left out of ``results_key``."""

LABELS_ONLY: dict[str, tuple[str, ...]] = {"target": ("name",)}
"""Settings that only name something: the primary target's name labels it in commands and folders,
while its run-file members and arrays carry no name, so renaming it changes no stored number. (An
extra target's name is part of the key: its members are stored under it.)"""

ADDED_TOP_LEVEL_AT_DEFAULT: dict[str, Any] = {"extra_targets": []}
"""Top-level settings added after studies existed, left out of ``results_key`` at this value (as
``ADDED_AT_DEFAULT`` does within sections): a one-target study keeps its key."""

ADDED_AT_DEFAULT: dict[str, dict[str, Any]] = {
    "source": {"plant": None},
    "target": {"test_dataset": None},
    "design": {"unit": "class"},
    "model": {"stem": "auto"},
    "train": {
        "trainer": None,
        "optimizer": "adam",
        "momentum": 0.9,
        "nesterov": False,
        "lr_schedule": "one_cycle",
        "lr_peak_epoch": 2.0,
        "label_smoothing": 0.0,
        "augment": "none",
        "crop_scale": [0.08, 1.0],
    },
    "transfer": {
        "head": "lbfgs",
        "batchnorm": "freeze",
        "epochs": 16,
        "batch_size": 1024,
        "lr": 0.1,
        "lr_peak_epoch": 2.0,
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "augment": "none",
    },
}
"""Settings added after studies already existed, with the value that reproduces those studies. At that
value a setting is left out of ``results_key``, so every study made before it existed keeps its key
(and resumes); set to anything else it enters the key. A setting added later goes here too, with its
default; ``tests/test_resnet_recipe.py`` checks that this table matches the fields' defaults."""


def _drop_added_settings_at_defaults(payload: dict[str, Any]) -> None:
    for section, defaults in ADDED_AT_DEFAULT.items():
        part = payload[section]
        for name, default in defaults.items():
            if name in part and part[name] == default:
                del part[name]


def stored_config(data: dict[str, Any]) -> StudyConfig:
    """A config read back from a study directory: checked like any config, except that its plugins are
    not imported (a worker or ``train.trainer`` imports them where they are used)."""
    return StudyConfig.model_validate(data, context={STORED: True})


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
        raise ConfigError(f"{origin}: {validation_problems(exc)}") from None


def validation_problems(exc: ValidationError) -> str:
    """Pydantic's errors as ``field.path: message`` (its "Value error, " prefix dropped: the message
    of a validator here already says what is wrong and how to fix it)."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg'].removeprefix('Value error, ')}"
        for err in exc.errors()
    )


def packaged_config(name: str) -> Path:
    """Path of a config shipped inside the package (``configs/NAME.yaml``)."""
    path = Path(__file__).resolve().parent.parent / "configs" / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"no packaged config named {name!r}")
    return path
