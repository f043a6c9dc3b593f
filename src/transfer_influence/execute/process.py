"""A pool of *spawned* worker processes, each with a few torch threads and one run at a time.

Measured here: two processes × one thread beat one process × two threads for models this small.

Each worker loads the study once (``work.serve``) and then takes one spec at a time over its own
pipe, so the parent always knows which run every worker holds. That is what makes failures exact:

* a run that raises is counted and retried;
* a worker that dies names its run: that run alone is counted and retried, and the worker replaced;
* a run past ``execution.run_timeout_s`` has its worker killed and replaced, and is retried,
  while the other workers carry on.

Counting and giving up is :class:`~.base.AttemptLedger`'s, shared with the serial executor. The
parent sleeps in ``multiprocessing.connection.wait`` on every pipe and process sentinel, waking for
a message, a death or the nearest deadline; the overhead per run is one small message each way.
"""

from __future__ import annotations

import os
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing import get_context
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import IO, Iterator

from ..errors import RunFailedError
from ..study.config import StudyConfig
from ..study.design import RunSpec
from .base import AttemptLedger, ProgressCallback, RunSummary
from .work import GLIBC_TUNABLES, serve

SHUTDOWN_GRACE_S = 10.0
"""How long an idle worker may take to exit after being told to, before it is killed."""


def default_workers(threads_per_worker: int) -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, cores // threads_per_worker)


@dataclass(eq=False)
class _WorkerHandle:
    """The parent's view of one worker: its process, its pipe, and the run it holds (if any)."""

    process: BaseProcess
    conn: Connection
    ready: bool = False
    gpu: str | None = None
    spec: RunSpec | None = None
    deadline: float | None = None

    def start(self, spec: RunSpec, timeout_s: float | None) -> None:
        """Hand ``spec`` to this idle worker; raises OSError if the worker is gone (the run never started)."""
        self.conn.send(spec)
        self.spec = spec
        self.deadline = None if timeout_s is None else time.monotonic() + timeout_s

    def finish(self) -> RunSpec:
        spec, self.spec, self.deadline = self.spec, None, None
        assert spec is not None, "a worker reported a run it was never given"
        return spec

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        self.conn.close()


@dataclass
class ProcessExecutor:
    study_dir: Path
    config: StudyConfig
    workers: int
    stream: IO[str] | None = None
    gpus: list[str] = field(default_factory=list)
    """GPU ids handed out one per worker process (``CUDA_VISIBLE_DEVICES``); empty: none set."""

    def execute(self, specs: list[RunSpec], on_done: ProgressCallback) -> list[RunSummary]:
        ledger = AttemptLedger.from_config(self.config.execution, self.stream, self.study_dir)
        scheduler = _Scheduler(self, deque(specs), on_done, ledger)
        return scheduler.run()

    def spawn_worker(self, gpu: str | None = None) -> _WorkerHandle:
        """A new worker process; with ``gpu`` it sees only that GPU (as its device 0)."""
        # glibc reads its tunables at process start: set them before the worker is spawned.
        os.environ.setdefault("GLIBC_TUNABLES", GLIBC_TUNABLES)
        with _environment("CUDA_VISIBLE_DEVICES", gpu):
            handle = self._spawn()
        handle.gpu = gpu
        return handle

    def _spawn(self) -> _WorkerHandle:
        context = get_context("spawn")
        parent_end, child_end = context.Pipe(duplex=True)
        process = context.Process(
            target=serve,
            args=(child_end, str(self.study_dir), self.config.model_dump_json(), self.config.execution.threads_per_worker),
            name="transfer-influence-worker",
            daemon=True,
        )
        process.start()
        child_end.close()  # the parent keeps only its own end, so a dead worker reads as EOF
        return _WorkerHandle(process, parent_end)


@dataclass
class _Scheduler:
    """One ``execute`` call: hands queued specs to idle workers until all are done or the study stops."""

    executor: ProcessExecutor
    queue: deque[RunSpec]
    on_done: ProgressCallback
    ledger: AttemptLedger
    workers: list[_WorkerHandle] = field(default_factory=list)
    done: list[RunSummary] = field(default_factory=list)
    stopping: bool = False
    error: RunFailedError | None = None
    """The failure that ends the study, raised once the runs in flight have finished."""

    def run(self) -> list[RunSummary]:
        size = max(1, min(self.executor.workers, len(self.queue)))
        clean = False
        try:
            while self._refill(size) or self._busy():
                self._assign()
                self._wait_and_handle()
            clean = True
        finally:
            self._shutdown(graceful=clean)
        if self.error is not None:
            raise self.error
        return self.done

    # ---- the loop ----------------------------------------------------------------------------
    def _wants_more(self) -> bool:
        return bool(self.queue) and not self.stopping

    def _busy(self) -> list[_WorkerHandle]:
        return [w for w in self.workers if w.spec is not None]

    def _refill(self, size: int) -> bool:
        """Spawn workers up to ``size`` while runs wait (replacing dead and killed ones); True while
        there is work to start."""
        if not self._wants_more():
            return False
        while len(self.workers) < min(size, len(self.queue) + len(self._busy())):
            self.workers.append(self.executor.spawn_worker(self._free_gpu()))
        return True

    def _free_gpu(self) -> str | None:
        """The GPU held by the fewest live workers (a replacement takes its dead predecessor's)."""
        gpus = self.executor.gpus
        if not gpus:
            return None
        held = [w.gpu for w in self.workers]
        return min(gpus, key=lambda g: (held.count(g), gpus.index(g)))

    def _assign(self) -> None:
        for worker in list(self.workers):
            if worker.ready and worker.spec is None and self._wants_more():
                spec = self.queue.popleft()
                try:
                    worker.start(spec, self.ledger.timeout_s)
                except OSError:
                    # It died idle, before the run reached it: no attempt spent; the next refill replaces it.
                    self.queue.appendleft(spec)
                    self._retire(worker)

    def _wait_and_handle(self) -> None:
        if not self.workers:
            return  # all retired just now: the next refill spawns their replacements
        objects: list[object] = [w.conn for w in self.workers] + [w.process.sentinel for w in self.workers]
        wait(objects, timeout=self._seconds_to_next_deadline())  # type: ignore[arg-type]
        for worker in list(self.workers):
            if worker not in self.workers:
                continue  # retired while an earlier message was handled
            if worker.conn.poll():
                try:
                    message = worker.conn.recv()
                except (EOFError, OSError):
                    self._worker_died(worker)
                    continue
                self._handle(worker, message)
            elif not worker.process.is_alive():
                self._worker_died(worker)
        self._expire_deadlines()

    def _seconds_to_next_deadline(self) -> float | None:
        deadlines = [w.deadline for w in self.workers if w.deadline is not None]
        return max(0.0, min(deadlines) - time.monotonic()) if deadlines else None

    # ---- events ------------------------------------------------------------------------------
    def _handle(self, worker: _WorkerHandle, message: tuple[str, object]) -> None:
        kind, payload = message
        if kind == "ready":
            worker.ready = True
        elif kind == "init_failed":
            self._retire(worker)
            self._fail(RunFailedError(
                f"a worker process could not load the study in {self.executor.study_dir}: "
                f"{str(payload).strip().splitlines()[-1]}; finished runs are kept — fix the cause and run the "
                "same command again to resume"
            ))
        elif kind == "done":
            worker.finish()
            assert isinstance(payload, RunSummary)
            summary = self.ledger.succeeded(payload)
            self.done.append(summary)
            # The next run first: the callback may take a while (a reliability check), and a worker
            # should not wait for it. A stop it asks for lets that run finish like any in flight.
            self._assign()
            if self.on_done(summary):
                self.stopping = True  # let the runs in flight finish, start no more
        elif kind == "failed":
            reason, trace = payload if isinstance(payload, tuple) else (str(payload), None)
            self._attempt_failed(worker.finish(), str(reason), traceback=trace)
        else:
            raise RuntimeError(f"unknown message {kind!r} from a worker process")

    def _worker_died(self, worker: _WorkerHandle) -> None:
        self._retire(worker)
        code = worker.process.exitcode
        if worker.spec is not None:
            self._attempt_failed(worker.finish(), f"its worker process died (exit code {code})")
        elif not worker.ready:
            self._fail(RunFailedError(
                f"a worker process died while loading the study in {self.executor.study_dir} (exit code {code}); "
                "finished runs are kept — check free memory and run the same command again to resume"
            ))
        # An idle worker that died is simply replaced by the next refill.

    def _expire_deadlines(self) -> None:
        now = time.monotonic()
        for worker in list(self.workers):
            if worker.deadline is not None and now >= worker.deadline:
                self._retire(worker)
                self._attempt_failed(worker.finish(), timed_out=True)

    def _attempt_failed(
        self, spec: RunSpec, reason: str = "", timed_out: bool = False, traceback: str | None = None
    ) -> None:
        """Count the attempt; retry the run first (it fails fast if it keeps failing) unless stopping."""
        retry = not self.stopping
        error = self.ledger.attempt_failed(spec.run_id, reason, retry, timed_out, traceback)
        if error is not None:
            self._fail(error)
        elif retry:
            self.queue.appendleft(spec)

    def _fail(self, error: RunFailedError) -> None:
        """End the study: start nothing more, let the runs in flight finish, then raise ``error``."""
        self.error = self.error or error
        self.stopping = True

    def _retire(self, worker: _WorkerHandle) -> None:
        worker.kill()
        self.workers.remove(worker)

    def _shutdown(self, graceful: bool) -> None:
        """Tell idle workers to exit and wait for them; kill the rest (on an error: all of them)."""
        for worker in self.workers:
            if graceful and worker.ready and worker.spec is None:
                try:
                    worker.conn.send(None)
                except OSError:
                    pass
        deadline = time.monotonic() + SHUTDOWN_GRACE_S
        for worker in self.workers:
            if graceful and worker.ready and worker.spec is None:
                worker.process.join(max(0.0, deadline - time.monotonic()))
            worker.kill()
        self.workers.clear()


@contextmanager
def _environment(name: str, value: str | None) -> Iterator[None]:
    """Set (or leave alone, for None) one variable of this process's environment while a worker is
    spawned: a spawned child copies the parent's environment when it starts."""
    if value is None:
        yield
        return
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before
