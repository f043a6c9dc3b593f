"""The Ray executor: one Ray task per run, on a local Ray started for the study or on a cluster.

Each task runs the same worker code as the process pool (``work.init_worker`` once per Ray worker
process, then ``work.execute_one``): it writes its run file into the study directory atomically and
returns only the small :class:`RunSummary`, so nothing large passes through Ray's object store and
the study directory must be on storage every node sees.

Failures are counted at two levels, so that a flaky node costs no attempts but a broken run stops:

* a task whose worker process or node died is restarted by Ray itself, up to
  ``execution.ray.max_retries`` times, without the driver seeing it;
* a run that raised, timed out (``execution.run_timeout_s``: its task is cancelled by force), or
  died more often than Ray retries counts as one failed attempt in the shared
  :class:`~.base.AttemptLedger`, and is submitted again until ``execution.max_attempts`` is spent;
  then :class:`RunFailedError` ends the study once the runs in flight have finished. Finished runs
  stay in the store, and running the same command again resumes.

At most as many tasks are in flight as the cluster has room for, so a stop asked for by the
progress callback (a stop rule) lets only those finish, as with the process pool.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import tempfile
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import IO, Any, Iterator

from ..errors import ConfigError, InputError, RunFailedError
from ..study.config import RayConfig, StudyConfig
from ..study.design import RunSpec
from .base import AttemptLedger, ProgressCallback, RunSummary
from .work import GLIBC_TUNABLES, execute_one, init_worker

INSTALL_HINT = "pip install 'transfer-influence[ray]'"
RAY_ENVIRONMENT = {
    "RAY_USAGE_STATS_ENABLED": "0",  # no usage report sent from a study
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # a local Ray listens on 127.0.0.1 only
}
CONNECT_TIMEOUT_S = 5.0
"""How long the head node's port may take to accept a connection before the address is refused."""
STALE_EXIT_TIMEOUT_S = 10.0
"""How long processes of a killed earlier local Ray may take to exit once killed."""

_loaded_study: dict[str, tuple[str, str]] = {}
"""The study a Ray worker process holds (per process, like ``work``'s state): loaded once, reused."""


def import_ray() -> ModuleType:
    """Ray, or one clear error naming the extra to install."""
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(
            f"execution.executor is 'ray' but Ray cannot be imported ({exc}); install it with {INSTALL_HINT}, "
            "or choose another executor (--executor process)"
        ) from None
    return ray


def check_reachable(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Refuse an address where no Ray head answers, at once: ``ray.init`` would retry for a minute
    and then fail with a message about its internals."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            return
    except OSError as exc:
        raise InputError(
            f"no Ray cluster answers at {address} ({exc}); start one there with `ray start --head --port {port}`, "
            "give the head node's address (execution.ray.address or --address), or leave the address out to run "
            "on a local Ray"
        ) from None


def run_in_ray_worker(study_dir: str, config_json: str, threads: int, spec: RunSpec) -> RunSummary:
    """A Ray task: one run, its file written into the study by this worker process."""
    key = (study_dir, config_json)
    if _loaded_study.get("study") != key:
        init_worker(study_dir, config_json, threads)
        _loaded_study["study"] = key
    return execute_one(spec)


@dataclass
class RayExecutor:
    study_dir: Path
    config: StudyConfig
    stream: IO[str] | None = None
    local_cpus: int | None = None
    """CPUs of a local Ray (None: the machine's); ignored when joining a cluster."""

    def __post_init__(self) -> None:
        import_ray()  # a missing extra is named before any run starts

    def execute(self, specs: list[RunSpec], on_done: ProgressCallback) -> list[RunSummary]:
        ray = import_ray()
        settings = self.config.execution.ray
        if settings.address not in (None, "auto"):
            check_reachable(settings.address)
        if not specs:
            return []
        with ray_session(ray, settings, self.local_cpus, self.study_dir, self.stream):
            task = ray.remote(run_in_ray_worker).options(
                num_cpus=settings.num_cpus,
                num_gpus=settings.num_gpus,
                max_retries=settings.max_retries,
                retry_exceptions=False,  # an exception is an attempt, counted by the ledger
            )
            scheduler = _RayScheduler(
                ray,
                task,
                self._task_arguments(),
                deque(specs),
                on_done,
                AttemptLedger.from_config(self.config.execution, self.stream, self.study_dir),
                slots=task_slots(ray.cluster_resources(), settings),
            )
            return scheduler.run()

    def _task_arguments(self) -> tuple[str, str, int]:
        return (str(self.study_dir.resolve()), self.config.model_dump_json(), self.config.execution.threads_per_worker)


def task_slots(resources: dict[str, float], settings: RayConfig) -> int:
    """How many run tasks the cluster can run at once with the per-task resources asked for."""
    slots = resources.get("CPU", 0.0) / settings.num_cpus
    if settings.num_gpus > 0:
        slots = min(slots, resources.get("GPU", 0.0) / settings.num_gpus)
    if slots < 1:
        have = f"{resources.get('CPU', 0.0):g} CPUs and {resources.get('GPU', 0.0):g} GPUs"
        raise ConfigError(
            f"the Ray cluster has {have}, too few for one run's task (execution.ray.num_cpus "
            f"{settings.num_cpus:g}, num_gpus {settings.num_gpus:g}); lower them or add nodes"
        )
    return int(slots)


def local_ray_dir(study_dir: Path) -> Path:
    """The temporary folder of the study's local Ray, one per study directory: every process that
    Ray starts names it on its command line, which is how a killed driver's leftovers are found."""
    digest = hashlib.sha256(str(study_dir.resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"ray-ti-{digest}"


def processes_in(folder: Path) -> list[int]:
    """PIDs of the live processes that name ``folder`` on their command line or hold a file open
    in it (Ray's agents rename themselves but keep their logs there); none where there is no /proc."""
    prefix = f"{folder}/"
    found = []
    proc = Path("/proc")
    if not proc.is_dir():
        return found
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError):
            continue
        if state != "Z" and (prefix in command or _holds_a_file_in(entry, prefix)):
            found.append(int(entry.name))
    return found


def _holds_a_file_in(process: Path, prefix: str) -> bool:
    try:
        return any(os.readlink(fd).startswith(prefix) for fd in (process / "fd").iterdir())
    except OSError:  # another user's process, or one that has just exited
        return False


def end_stale_local_ray(ray_dir: Path, stream: IO[str] | None = None) -> int:
    """Kill what a killed earlier driver of this study left of its local Ray (its agents outlive a
    SIGKILLed driver); returns how many processes. Safe only under the study lock: no live driver of
    this study can own them then."""
    stale = processes_in(ray_dir)
    for pid in stale:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + STALE_EXIT_TIMEOUT_S
    while stale and processes_in(ray_dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    if stale and stream is not None:
        print(f"  ended {len(stale)} processes left behind by an earlier, killed local Ray of this study", file=stream)
    return len(stale)


@contextmanager
def ray_session(
    ray: ModuleType, settings: RayConfig, local_cpus: int | None, study_dir: Path, stream: IO[str] | None = None
) -> Iterator[None]:
    """Connected to Ray for the block: joins ``settings.address`` or starts a local Ray, and
    disconnects (stopping a local Ray with every process it started) at the end, whatever happens.

    A Ray session the caller opened already is used as it is and left open. ``ray stop`` is never
    used: it kills every Ray process on the machine, other users' included. A local Ray lives in
    the study's own temporary folder (``local_ray_dir``), so that what a SIGKILLed driver left of
    it is recognised, and ended, when the study runs again.
    """
    if ray.is_initialized():
        yield
        return
    for name, value in RAY_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    # glibc reads its tunables at process start: a local Ray's workers inherit them from here, a
    # cluster's get them through the job's runtime environment.
    os.environ.setdefault("GLIBC_TUNABLES", GLIBC_TUNABLES)
    options: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "runtime_env": {"env_vars": {"GLIBC_TUNABLES": os.environ["GLIBC_TUNABLES"]}},
    }
    if settings.address is None:
        # "local": a Ray of its own, even where RAY_ADDRESS or a `ray start` cluster is found.
        options["address"] = "local"
        options["_temp_dir"] = str(local_ray_dir(study_dir))
        end_stale_local_ray(local_ray_dir(study_dir), stream)
        options["object_store_memory"] = settings.object_store_memory_mb * 1024 * 1024
        options["num_cpus"] = local_cpus
    else:
        options["address"] = settings.address
    try:
        ray.init(**options)
    except ConnectionError as exc:
        raise InputError(
            f"could not join the Ray cluster at {settings.address}: {exc}; check that it is running (`ray status` "
            "on the head node) and that this machine has the same Ray and Python versions"
        ) from None
    finished = False
    try:
        yield
        finished = True
    finally:
        # A local Ray's processes (GCS, raylet, workers) have exited when this returns.
        ray.shutdown(wait_for_processes=settings.address is None)
        if finished and settings.address is None:
            shutil.rmtree(local_ray_dir(study_dir), ignore_errors=True)  # its logs are kept after a failure only


@dataclass
class _InFlight:
    spec: RunSpec
    deadline: float | None


@dataclass
class _RayScheduler:
    """One ``execute`` call: keeps up to ``slots`` tasks in flight until every run is done, the
    callback asks to stop, or a run has failed every attempt."""

    ray: ModuleType
    task: Any
    arguments: tuple[str, str, int]
    queue: deque[RunSpec]
    on_done: ProgressCallback
    ledger: AttemptLedger
    slots: int
    in_flight: dict[Any, _InFlight] = field(default_factory=dict)
    done: list[RunSummary] = field(default_factory=list)
    stopping: bool = False
    error: RunFailedError | None = None

    def run(self) -> list[RunSummary]:
        try:
            while self._submit_more() or self.in_flight:
                ready, _ = self.ray.wait(list(self.in_flight), num_returns=1, timeout=self._seconds_to_next_deadline())
                for ref in ready:
                    self._finished(ref)
                self._expire_deadlines()
        finally:
            for ref in self.in_flight:  # only on an error or Ctrl-C: nothing may outlive the study
                self.ray.cancel(ref, force=True)
        if self.error is not None:
            raise self.error
        return self.done

    def _submit_more(self) -> bool:
        """Start queued runs while there is room; True while any wait to start."""
        while self.queue and not self.stopping and len(self.in_flight) < self.slots:
            spec = self.queue.popleft()
            timeout = self.ledger.timeout_s
            ref = self.task.remote(*self.arguments, spec)
            self.in_flight[ref] = _InFlight(spec, None if timeout is None else time.monotonic() + timeout)
        return bool(self.queue) and not self.stopping

    def _seconds_to_next_deadline(self) -> float | None:
        deadlines = [flight.deadline for flight in self.in_flight.values() if flight.deadline is not None]
        return max(0.0, min(deadlines) - time.monotonic()) if deadlines else None

    def _finished(self, ref: Any) -> None:
        spec = self.in_flight.pop(ref).spec
        try:
            summary = self.ray.get(ref)
        except self.ray.exceptions.RayTaskError as exc:
            reason = repr(exc.cause) if exc.cause is not None else str(exc).strip().splitlines()[-1]
            self._attempt_failed(spec, reason, traceback=str(exc))
            return
        except self.ray.exceptions.RayError as exc:
            self._attempt_failed(spec, f"its Ray worker died ({exc.__class__.__name__}, after Ray's own retries)")
            return
        summary = self.ledger.succeeded(summary)
        self.done.append(summary)
        self._submit_more()  # the next run first: the callback may take a while
        if self.on_done(summary):
            self.stopping = True

    def _expire_deadlines(self) -> None:
        now = time.monotonic()
        for ref, flight in list(self.in_flight.items()):
            if flight.deadline is not None and now >= flight.deadline:
                del self.in_flight[ref]
                self.ray.cancel(ref, force=True)  # kills its worker process
                self._attempt_failed(flight.spec, timed_out=True)

    def _attempt_failed(
        self, spec: RunSpec, reason: str = "", timed_out: bool = False, traceback: str | None = None
    ) -> None:
        retry = not self.stopping
        error = self.ledger.attempt_failed(spec.run_id, reason, retry, timed_out, traceback)
        if error is not None:
            self.error = self.error or error
            self.stopping = True
        elif retry:
            self.queue.appendleft(spec)
