"""Executors: run a list of RunSpecs, each worker writing its own run file.

* ``SerialExecutor``: in this process (debugging, tiny studies, GPU with one device).
* ``ProcessExecutor`` (default): a pool of *spawned* processes, each with a few torch threads.
  Measured here: two processes × one thread beat one process × two threads for models this small.

A run whose worker raised or died is submitted again (up to ``max_attempts``), never dropped; a pool
broken by a dead worker is rebuilt and the runs that were in flight are retried.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable, Protocol

from .config import StudyConfig
from .plan import RunSpec

GLIBC_TUNABLES = "glibc.malloc.mmap_threshold=4294967296:glibc.malloc.trim_threshold=17179869184"
FAULT_ENV = "TRANSFER_INFLUENCE_INJECT_CRASH"
"""Test hook: ``RUN_ID`` makes the worker die (os._exit) the first time it starts that run."""


class RunFailedError(RuntimeError):
    """A run failed on every allowed attempt; the study stops with the finished runs kept."""


@dataclass
class RunSummary:
    run_id: str
    seconds: dict[str, float]
    source_accuracy: float
    target_accuracy: float
    attempts: int = 1


ProgressCallback = Callable[[RunSummary], bool]
"""Called once per finished run; returning True stops the study after the runs in flight."""


class Executor(Protocol):
    def execute(self, specs: list[RunSpec], on_done: ProgressCallback) -> list[RunSummary]: ...


# ---- the worker side (module-level state so that spawned processes can hold it) ------------------
_worker_state: dict[str, Any] = {}


def init_worker(study_dir: str, config_json: str, threads: int) -> None:
    """Load the study's data once per process and build the tensors every run reuses."""
    import torch

    from .runner import Worker
    from .store import StudyStore
    from .views import load_study_data

    torch.set_num_threads(threads)
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


# ---- executors ---------------------------------------------------------------------------------
@dataclass
class SerialExecutor:
    study_dir: Path
    config: StudyConfig

    def execute(self, specs: list[RunSpec], on_done: ProgressCallback) -> list[RunSummary]:
        init_worker(str(self.study_dir), self.config.model_dump_json(), self.config.execution.threads_per_worker)
        done: list[RunSummary] = []
        for spec in specs:
            for attempt in range(1, self.config.execution.max_attempts + 1):
                try:
                    summary = execute_one(spec)
                except Exception as exc:  # noqa: BLE001 - any failure of a run is retried
                    if attempt == self.config.execution.max_attempts:
                        raise RunFailedError(f"run {spec.run_id} failed {attempt} times; last error: {exc!r}") from exc
                    continue
                summary.attempts = attempt
                done.append(summary)
                if on_done(summary):
                    return done
                break
        return done


def default_workers(threads_per_worker: int) -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, cores // threads_per_worker)


@dataclass
class ProcessExecutor:
    study_dir: Path
    config: StudyConfig
    workers: int
    attempts: dict[str, int] = field(default_factory=dict)
    stopped: bool = False

    def _new_pool(self, size: int) -> ProcessPoolExecutor:
        # glibc reads its tunables at process start: set them before the workers are spawned.
        os.environ.setdefault("GLIBC_TUNABLES", GLIBC_TUNABLES)
        return ProcessPoolExecutor(
            max_workers=size,
            mp_context=get_context("spawn"),
            initializer=init_worker,
            initargs=(str(self.study_dir), self.config.model_dump_json(), self.config.execution.threads_per_worker),
        )

    def execute(self, specs: list[RunSpec], on_done: ProgressCallback) -> list[RunSummary]:
        done: list[RunSummary] = []
        queue = list(specs)
        while queue and not self.stopped:
            queue, suspects = self._run_pool(queue, self.workers, on_done, done)
            for spec in suspects:
                # Alone in a pool of one, a dead worker names the run that killed it.
                while self._run_pool([spec], 1, on_done, done)[1]:
                    self._count_failure(spec, "its worker process died")
        return done

    def _run_pool(
        self, queue: list[RunSpec], size: int, on_done: ProgressCallback, done: list[RunSummary]
    ) -> tuple[list[RunSpec], list[RunSpec]]:
        """Run ``queue`` until it is empty or a worker dies.

        Returns the runs never started and the *suspects*: runs in flight when a worker died (a
        broken pool fails all of them, so which one killed it is unknown).
        """
        queue = list(queue)
        size = min(size, len(queue))
        pool = self._new_pool(size)
        in_flight: dict[Future[RunSummary], RunSpec] = {}
        suspects: list[RunSpec] = []
        try:
            while (queue or in_flight) and not suspects:
                # A bounded number in flight: a broken pool then has few suspects to re-run.
                while queue and len(in_flight) < 2 * size:
                    spec = queue.pop(0)
                    in_flight[pool.submit(execute_one, spec)] = spec
                finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                suspects = self._collect(finished, in_flight, queue, on_done, done)
            if suspects:
                wait(in_flight)
                suspects += self._collect(set(in_flight), in_flight, queue, on_done, done)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return queue, suspects

    def _collect(
        self,
        finished: set[Future[RunSummary]],
        in_flight: dict[Future[RunSummary], RunSpec],
        queue: list[RunSpec],
        on_done: ProgressCallback,
        done: list[RunSummary],
    ) -> list[RunSpec]:
        """Record finished futures; failed runs go back on the queue, broken-pool ones are returned."""
        broken: list[RunSpec] = []
        for future in finished:
            spec = in_flight.pop(future)
            error = future.exception()
            if isinstance(error, BrokenProcessPool):
                broken.append(spec)
            elif error is not None:
                self._count_failure(spec, repr(error))
                queue.append(spec)
            else:
                summary = future.result()
                summary.attempts = self.attempts.get(spec.run_id, 0) + 1
                done.append(summary)
                if on_done(summary):
                    self.stopped = True
                    queue.clear()  # stop: let the runs in flight finish, start no more
        return broken

    def _count_failure(self, spec: RunSpec, reason: str) -> None:
        self.attempts[spec.run_id] = self.attempts.get(spec.run_id, 0) + 1
        if self.attempts[spec.run_id] >= self.config.execution.max_attempts:
            raise RunFailedError(
                f"run {spec.run_id} failed {self.attempts[spec.run_id]} times (last: {reason}); "
                "finished runs are kept — fix the cause and run the same command again to resume"
            )


def make_executor(config: StudyConfig, study_dir: Path, num_specs: int) -> Executor:
    execution = config.execution
    if execution.executor == "serial":
        return SerialExecutor(study_dir, config)
    workers = execution.workers if isinstance(execution.workers, int) else default_workers(execution.threads_per_worker)
    if execution.device == "cuda":
        workers = 1 if execution.workers == "auto" else workers
    return ProcessExecutor(study_dir, config, max(1, min(workers, num_specs)))
