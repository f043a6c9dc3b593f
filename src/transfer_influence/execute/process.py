"""A pool of *spawned* worker processes, each with a few torch threads.

Measured here: two processes × one thread beat one process × two threads for models this small.
A run whose worker raised or died is submitted again (up to ``max_attempts``), never dropped; a pool
broken by a dead worker is rebuilt and the runs that were in flight are retried.
"""

from __future__ import annotations

import os
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

from ..errors import RunFailedError
from ..study.config import StudyConfig
from ..study.design import RunSpec
from .base import ProgressCallback, RunSummary
from .work import GLIBC_TUNABLES, execute_one, init_worker


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
