"""Executors: run a list of run specs, each worker writing its own run file into the study.

``serial`` (in this process), ``process`` (a pool of spawned workers) and ``ray`` (one Ray task per
run) share one retry and timeout policy (``base.AttemptLedger``); ``work`` is the worker side;
``single`` runs one run of a stored study by index (the ``work`` command, for external schedulers),
which is what each task of the ``slurm`` executor's job array calls.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import IO

from ..study.config import StudyConfig
from .base import AttemptLedger, Executor, ProgressCallback, RunFailedError, RunSummary
from .process import ProcessExecutor, default_workers
from ..train.device import resolved_device_type, visible_gpus
from .serial import SerialExecutor
from .sweep import SweepReport, run_sweep

__all__ = [
    "AttemptLedger", "Executor", "ProgressCallback", "RunFailedError", "RunSummary", "SweepReport", "make_executor",
    "run_sweep",
]


def make_executor(config: StudyConfig, study_dir: Path, num_specs: int, stream: IO[str] | None = None) -> Executor:
    """The configured executor; retries are reported on ``stream`` as well as logged."""
    execution = config.execution
    if execution.executor == "serial":
        return SerialExecutor(study_dir, config, stream)
    if execution.executor == "ray":  # imported here: Ray is an optional extra
        from .ray_executor import RayExecutor

        return RayExecutor(study_dir, config, stream, local_cpus=_local_ray_cpus(config))
    if execution.executor == "slurm":  # imported here: submitit is an optional extra
        from .slurm_executor import SlurmExecutor

        return SlurmExecutor(study_dir, config, stream)
    gpus = worker_gpus(config)
    workers = execution.workers if isinstance(execution.workers, int) else default_workers(execution.threads_per_worker)
    if gpus and execution.workers == "auto":
        workers = len(gpus)  # one worker per GPU
    return ProcessExecutor(study_dir, config, max(1, min(workers, num_specs)), stream, gpus)


def worker_gpus(config: StudyConfig) -> list[str]:
    """The GPU ids the process pool hands out, one per worker: ``execution.gpus``, else every visible
    GPU when the study runs on CUDA; none on CPU."""
    execution = config.execution
    if execution.gpus is not None:
        return list(execution.gpus)
    if resolved_device_type(execution.device) != "cuda":
        return []
    return visible_gpus()


def _local_ray_cpus(config: StudyConfig) -> int:
    """CPUs of a local Ray: room for ``execution.workers`` runs when set, else the usable cores."""
    execution = config.execution
    if isinstance(execution.workers, int):
        return max(1, math.ceil(execution.workers * execution.ray.num_cpus))
    return default_workers(1)
