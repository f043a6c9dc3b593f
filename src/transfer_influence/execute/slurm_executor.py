"""The SLURM executor: one job array (through submitit) over the study's *missing* runs.

Each array task calls :func:`~.single.run_single` — the code of ``transfer-influence work STUDY
--kind K --index I``: stateless, idempotent, rebuilding its run from the study's stored config and
writing the run file into the study directory atomically. The driver (``run``, on a login node)
submits the array, waits for it, and then judges every run **from the store**: a run whose file
exists is done, whatever the scheduler says, and what is left to do is computed from the store
again before the next array is submitted. So a driver killed mid-study loses nothing: running the
same command again submits an array over the runs still missing.

Attempts: inside its task a run is retried as the serial executor retries it
(``execution.max_attempts``, ``execution.run_timeout_s``); a task that raised has used those
attempts and ends the study (once the rest of the array has finished) with
:class:`RunFailedError`. A task that ended with no result — preempted, out of memory, past its
time limit, its node lost — counts as one failed attempt of its run in the shared
:class:`~.base.AttemptLedger` and is submitted again in the next array.

submitit's LocalExecutor is never used (it starts every job at once); ``execution.slurm.cluster:
debug`` runs the array's tasks one after another in this process with its DebugExecutor instead.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import IO, Any, Iterator

from ..errors import ConfigError, RunFailedError
from ..study.config import SlurmConfig, StudyConfig
from ..study.design import RunSpec
from ..study.store import StudyStore
from .base import AttemptLedger, ProgressCallback, RunSummary
from .single import RUN_KINDS, run_single
from .work import GLIBC_TUNABLES

INSTALL_HINT = "pip install 'transfer-influence[slurm]'"
TRACE_FRAME = "-" * 22
"""The line submitit draws above and below a failed task's traceback in its FailedJobError."""
LOG_DIR = "slurm"
"""submitit's folder inside the study (job scripts, task pickles and logs), unless configured."""


def import_submitit() -> ModuleType:
    """submitit, or one clear error naming the extra to install."""
    try:
        import submitit
    except ImportError as exc:
        raise ConfigError(
            f"execution.executor is 'slurm' but submitit cannot be imported ({exc}); install it with {INSTALL_HINT}, "
            "or choose another executor (--executor process)"
        ) from None
    return submitit


def sbatch_parameters(settings: SlurmConfig, job_name: str) -> dict[str, Any]:
    """submitit's SLURM parameters for one array: each becomes an ``#SBATCH`` line of its script."""
    parameters: dict[str, Any] = {
        "job_name": job_name,
        "cpus_per_task": settings.cpus_per_task,
        "mem": _memory(settings.mem_gb),
        "time": settings.time_min,
        "array_parallelism": settings.array_parallelism,
        # glibc reads its tunables at process start: exported before the task's Python starts.
        "setup": [f"export GLIBC_TUNABLES=${{GLIBC_TUNABLES:-{GLIBC_TUNABLES}}}", *settings.setup],
    }
    if settings.gpus_per_task:
        parameters["gpus_per_task"] = settings.gpus_per_task
    if settings.partition is not None:
        parameters["partition"] = settings.partition
    if settings.account is not None:
        parameters["account"] = settings.account
    if settings.additional:
        parameters["additional_parameters"] = dict(settings.additional)
    return parameters


def _memory(gigabytes: float) -> str:
    return f"{int(gigabytes)}GB" if gigabytes == int(gigabytes) else f"{int(gigabytes * 1024)}MB"


@dataclass
class SlurmExecutor:
    study_dir: Path
    config: StudyConfig
    stream: IO[str] | None = None

    def __post_init__(self) -> None:
        self.submitit = import_submitit()  # a missing extra is named before any run starts
        self.settings = self.config.execution.slurm
        if self.settings.cluster == "slurm":
            missing = [command for command in ("sbatch", "srun", "sacct") if shutil.which(command) is None]
            if missing:
                raise ConfigError(
                    f"execution.executor is 'slurm' but {', '.join(missing)} is not on PATH: run `transfer-influence "
                    "run` on a SLURM login node, or set execution.slurm.cluster: debug to run the array's tasks in "
                    "this process"
                )

    def execute(self, specs: list[RunSpec], on_done: ProgressCallback) -> list[RunSummary]:
        _refuse_unnumbered(specs)
        rounds = _Rounds(self, StudyStore.open(self.study_dir), {s.run_id: s for s in specs}, on_done,
                         AttemptLedger.from_config(self.config.execution, self.stream, self.study_dir))
        return rounds.run()

    @property
    def log_dir(self) -> Path:
        return Path(self.settings.log_dir) if self.settings.log_dir else self.study_dir.resolve() / LOG_DIR

    def submit(self, missing: list[RunSpec]) -> list[tuple[RunSpec, Any]]:
        """One job array per ``max_array_size`` missing runs; each task runs ``work --kind K --index I``."""
        executor = self._submitit_executor()
        study = str(self.study_dir.resolve())
        jobs: list[tuple[RunSpec, Any]] = []
        size = self.settings.max_array_size
        for start in range(0, len(missing), size):
            chunk = missing[start:start + size]
            submitted = executor.map_array(
                run_single, [study] * len(chunk), [s.kind for s in chunk], [s.index for s in chunk]
            )
            jobs.extend(zip(chunk, submitted))
            self._say(
                f"submitted {submitted[0].job_id.split('_')[0]}: a job array of {len(chunk)} runs "
                f"({min(len(chunk), self.settings.array_parallelism)} at a time); logs in {self.log_dir}"
            )
        return jobs

    def _submitit_executor(self) -> Any:
        folder = self.log_dir / "%j"
        if self.settings.cluster == "debug":
            return self.submitit.DebugExecutor(folder=folder)
        executor = self.submitit.SlurmExecutor(folder=folder)
        executor.update_parameters(**sbatch_parameters(self.settings, f"transfer-influence-{self.config.name}"))
        return executor

    def _say(self, message: str) -> None:
        if self.stream is not None:
            print(f"  {message}", file=self.stream, flush=True)


def _refuse_unnumbered(specs: list[RunSpec]) -> None:
    """Array tasks rebuild their run from the study's config by kind and index, which retrains
    (named runs of a sweep) do not have."""
    named = [s.run_id for s in specs if s.name is not None or s.kind not in RUN_KINDS]
    if named:
        raise ConfigError(
            f"the slurm executor runs a study's numbered runs only, not {named[0]} and {len(named) - 1} more like it "
            "(retrains of a sweep); run those with execution.executor process or ray"
        )


@dataclass
class _Rounds:
    """Arrays over the runs still missing from the store, until none is, the callback asks to stop,
    or a run has failed for good."""

    executor: SlurmExecutor
    store: StudyStore
    wanted: dict[str, RunSpec]
    on_done: ProgressCallback
    ledger: AttemptLedger
    done: list[RunSummary] = field(default_factory=list)
    stopping: bool = False
    error: RunFailedError | None = None

    def run(self) -> list[RunSummary]:
        while not self.stopping:
            missing = [s for s in self.wanted.values() if not self.store.run_path(s.run_id).exists()]
            if not missing:
                break
            jobs = self.executor.submit(missing)
            for spec, job, error in self._in_order_of_finishing(jobs):
                self._judge(spec, job, error, jobs)
        if self.error is not None:
            raise self.error
        return self.done

    def _in_order_of_finishing(self, jobs: list[tuple[RunSpec, Any]]) -> Iterator[tuple[RunSpec, Any, BaseException | None]]:
        """Each task with its error (None if it raised none), as the scheduler reports them done."""
        pending = list(jobs)
        while pending:
            _ask_the_scheduler(job for _, job in pending)
            waiting = []
            for spec, job in pending:
                if _is_debug(job) and self.stopping:
                    continue  # stopping: a debug task not run yet is simply not run
                if _is_debug(job):
                    # DebugExecutor runs the task now; its done() would drop into pdb on an error.
                    yield spec, job, job.exception()
                elif job.done():
                    yield spec, job, _task_error(job)
                else:
                    waiting.append((spec, job))
            pending = waiting
            if pending:
                time.sleep(self.executor.settings.poll_s)

    def _judge(self, spec: RunSpec, job: Any, error: BaseException | None, jobs: list[tuple[RunSpec, Any]]) -> None:
        """The store decides: a run file is a finished run, whatever the task's fate."""
        if self.store.run_path(spec.run_id).exists():
            summary = self.ledger.succeeded(summary_from_store(self.store, spec.run_id))
            self.done.append(summary)
            if self.on_done(summary):
                self._stop(jobs)
            return
        if self.stopping and _was_cancelled(job):
            return  # cancelled by this driver before it started: left for a resume
        reason = _reason(job, error)
        if error is not None and not _is_uncompleted(error):
            self._fail(RunFailedError(
                f"run {spec.run_id} failed in its array task {job.job_id} after its attempts "
                f"(execution.max_attempts): {reason}; task log: {job.paths.stderr}; finished runs are kept — fix the "
                "cause and run the same command again to resume"
            ), jobs)
            return
        try:
            self.ledger.failed(spec.run_id, reason, will_retry=not self.stopping)
        except RunFailedError as failure:
            self._fail(failure, jobs)

    def _stop(self, jobs: list[tuple[RunSpec, Any]]) -> None:
        """Start nothing more: tasks still queued are cancelled, running ones finish."""
        self.stopping = True
        for _, job in jobs:
            if not _is_debug(job) and job.state == "PENDING":
                job.cancel(check=False)

    def _fail(self, error: RunFailedError, jobs: list[tuple[RunSpec, Any]]) -> None:
        self.error = self.error or error
        self._stop(jobs)


def summary_from_store(store: StudyStore, run_id: str) -> RunSummary:
    """A finished run's summary, from the record its task wrote beside the outputs."""
    _, record = store.read_run_mask_and_record(run_id)
    return RunSummary(run_id, dict(record["seconds"]), record["source_accuracy"], record["target_accuracy"])


def _ask_the_scheduler(jobs: Iterator[Any]) -> None:
    """One ``sacct`` call for every array asked about so far, once per poll: submitit on its own
    asks ever more rarely (up to every 10 minutes), which would leave a dead task unseen that long."""
    watchers = {id(job.watcher): job.watcher for job in jobs if not _is_debug(job)}
    for watcher in watchers.values():
        watcher.update()


def _is_debug(job: Any) -> bool:
    return type(job).__name__ == "DebugJob"


def _task_error(job: Any) -> BaseException | None:
    """The error a finished task's run raised; None for a task that left no result at all (killed,
    preempted, past its time limit, node lost), without submitit's wait for a late result file."""
    if not job.paths.result_pickle.exists():
        return None
    try:
        return job.exception()
    except Exception as error:  # noqa: BLE001 - a task that left no result at all
        return error


def _is_uncompleted(error: BaseException) -> bool:
    """A task that ended without a result (killed, preempted, timed out, node lost) rather than
    one whose run raised."""
    return type(error).__name__ == "UncompletedJobError"


def _was_cancelled(job: Any) -> bool:
    return "CANCELLED" in str(getattr(job, "state", ""))


def _reason(job: Any, error: BaseException | None) -> str:
    if error is None or _is_uncompleted(error):
        return f"its array task {job.job_id} ended without writing the run file (state {job.state})"
    text = str(error)
    framed = text.split(TRACE_FRAME)
    if len(framed) >= 3:  # submitit's FailedJobError: the task's traceback between two frames, then log paths
        text = framed[1]
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else repr(error)
