"""The worker side of every executor: load a study once per process, then run specs by index.

Module-level state so that spawned processes can hold it. torch is imported only when a worker
starts, never by the process that schedules the runs.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from ..study.config import StudyConfig
from ..study.design import RunSpec
from .base import RunSummary

GLIBC_TUNABLES = "glibc.malloc.mmap_threshold=4294967296:glibc.malloc.trim_threshold=17179869184"
FAULT_ENV = "TRANSFER_INFLUENCE_INJECT_CRASH"
"""Test hook: ``RUN_ID`` makes the worker die (os._exit) the first time it starts that run."""

_worker_state: dict[str, Any] = {}


def init_worker(study_dir: str, config_json: str, threads: int) -> None:
    """Load the study's data once per process and build the tensors every run reuses."""
    from ..train.device import set_threads
    from ..train.worker import Worker
    from ..study.store import StudyStore
    from ..study.views import load_study_data

    set_threads(threads)
    config = StudyConfig.model_validate_json(config_json)
    store = StudyStore.open(study_dir)
    _worker_state["store"] = store
    _worker_state["worker"] = Worker(config, load_study_data(store.data_path))


def execute_one(spec: RunSpec) -> RunSummary:
    """Run one spec and write its file; returns a small summary (the outputs stay on disk)."""
    store = _worker_state["store"]
    _maybe_inject_crash(store.path, spec.run_id)
    result = _worker_state["worker"].run(spec)
    record = {
        "source_accuracy": result.source_accuracy,
        "target_accuracy": result.target_accuracy,
        "seconds": result.seconds,
        "pid": os.getpid(),
        "finished": time.time(),
    }
    store.write_run(spec, result.outputs, record)
    return RunSummary(spec.run_id, result.seconds, result.source_accuracy, result.target_accuracy)


def _maybe_inject_crash(study_dir: Path, run_id: str) -> None:
    if os.environ.get(FAULT_ENV) != run_id:
        return
    marker = study_dir / f".crashed-{run_id}"
    if not marker.exists():
        marker.touch()
        os._exit(17)
