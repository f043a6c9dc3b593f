"""The worker side of every executor: load a study once per process, then run specs one at a time.

Module-level state so that spawned processes can hold it. torch is imported only when a worker
starts, never by the process that schedules the runs.
"""

from __future__ import annotations

import os
import signal
import time
import traceback
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from ..study.config import StudyConfig
from ..study.design import RunSpec
from ..study.store import clear_running, mark_running
from .base import RunSummary

GLIBC_TUNABLES = "glibc.malloc.mmap_threshold=4294967296:glibc.malloc.trim_threshold=17179869184"
FAULT_ENV = "TRANSFER_INFLUENCE_INJECT_CRASH"
"""Test hook, ``RUN_ID[:MODE]``: ``RUN_ID`` (mode ``once``) makes the worker die (os._exit) the first
time it starts that run; ``always`` makes it die every time; ``hang`` / ``hang-always`` make the run
sleep instead (first time / every time), to exercise ``execution.run_timeout_s``. Each faulted start
appends a line to ``STUDY/.crashed-RUN_ID`` (``.hung-RUN_ID`` for hangs), so tests can count them."""

FAULT_MODES = ("once", "always", "hang", "hang-always")

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
    """Run one spec and write its file; returns a small summary (the outputs stay on disk).

    While it runs, ``running/<run_id>.json`` says so (``status`` reads it, whichever executor or
    scheduler started the run); a worker killed outright leaves it behind, and ``status`` tells such
    a marker from a live run by its process where it can."""
    store = _worker_state["store"]
    mark_running(store.path, spec.run_id)
    try:
        return _execute_marked(store, spec)
    finally:
        clear_running(store.path, spec.run_id)


def _execute_marked(store: Any, spec: RunSpec) -> RunSummary:
    _maybe_inject_fault(store.path, spec.run_id)
    result = _worker_state["worker"].run(spec)
    record = {
        "source_accuracy": result.source_accuracy,
        "target_accuracy": result.target_accuracy,
        "seconds": result.seconds,
        "pid": os.getpid(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "finished": time.time(),
    }
    extras = {name: (r.outputs, r.predicted) for name, r in result.extra_targets.items()}
    if extras:
        record["extra_target_accuracy"] = {name: r.target_accuracy for name, r in result.extra_targets.items()}
    store.write_run(spec, result.outputs, record, result.predicted, extras)
    return RunSummary(spec.run_id, result.seconds, result.source_accuracy, result.target_accuracy)


def serve(conn: Connection, study_dir: str, config_json: str, threads: int) -> None:
    """Main loop of a pool worker process (see ``process.py`` for the parent's side).

    Messages to the parent: ``("ready", pid)`` once the study is loaded (or ``("init_failed",
    traceback)``), then one ``("done", RunSummary)`` or ``("failed", repr(error))`` per spec received.
    It stops when the parent sends None or goes away. SIGINT is ignored: on Ctrl-C the parent decides
    what happens to its workers, and a traceback from every worker would only bury its message.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        init_worker(study_dir, config_json, threads)
    except Exception:  # noqa: BLE001 - reported to the parent, which stops the study with it
        _send(conn, ("init_failed", traceback.format_exc()))
        return
    if not _send(conn, ("ready", os.getpid())):
        return
    while True:
        try:
            spec = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone
        if spec is None:
            return
        try:
            message: tuple[str, object] = ("done", execute_one(spec))
        except Exception as exc:  # noqa: BLE001 - any failure of a run is the parent's to count and retry
            message = ("failed", (repr(exc), traceback.format_exc()))
        if not _send(conn, message):
            return


def _send(conn: Connection, message: tuple[str, object]) -> bool:
    try:
        conn.send(message)
    except (BrokenPipeError, EOFError, OSError):
        return False
    return True


def _maybe_inject_fault(study_dir: Path, run_id: str) -> None:
    target, _, mode = os.environ.get(FAULT_ENV, "").partition(":")
    if target != run_id:
        return
    mode = mode or "once"
    if mode not in FAULT_MODES:
        raise ValueError(f"{FAULT_ENV}: unknown mode {mode!r}; choose one of {FAULT_MODES}")
    hang = mode.startswith("hang")
    marker = study_dir / f".{'hung' if hang else 'crashed'}-{run_id}"
    if not mode.endswith("always") and marker.exists():
        return
    with open(marker, "a") as handle:
        handle.write(f"{os.getpid()}\n")
    if not hang:
        os._exit(17)
    while True:
        time.sleep(3600)
