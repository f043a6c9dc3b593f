"""Executors: run a list of run specs, each worker writing its own run file into the study.

``serial`` (in this process) and ``process`` (a pool of spawned workers); ``work`` is the worker side.
"""

from __future__ import annotations

from pathlib import Path

from ..study.config import StudyConfig
from .base import Executor, ProgressCallback, RunFailedError, RunSummary
from .process import ProcessExecutor, default_workers
from .serial import SerialExecutor

__all__ = ["Executor", "ProgressCallback", "RunFailedError", "RunSummary", "make_executor"]


def make_executor(config: StudyConfig, study_dir: Path, num_specs: int) -> Executor:
    execution = config.execution
    if execution.executor == "serial":
        return SerialExecutor(study_dir, config)
    workers = execution.workers if isinstance(execution.workers, int) else default_workers(execution.threads_per_worker)
    if execution.device == "cuda":
        workers = 1 if execution.workers == "auto" else workers
    return ProcessExecutor(study_dir, config, max(1, min(workers, num_specs)))
