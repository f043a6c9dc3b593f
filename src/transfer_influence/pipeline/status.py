"""Where a study stands, from its directory alone: ``transfer-influence status STUDY_DIR``.

Everything is read from the store, so the answer is the same whichever executor or scheduler runs
the study, and reading changes nothing (a study on a read-only share can be watched):

* done: run files present (their checks happen when ``run`` or a reader consolidates them);
* failed: ``runs/<run_id>.failed.json`` without a run file, with the last error;
* running: ``running/<run_id>.json`` markers, written by the worker itself. On this host a marker
  whose process is gone is *stale* (a killed worker) and the run counts as missing; a marker from
  another host is shown with its age, since its process cannot be checked from here;
* missing: the rest of the planned runs.

Throughput is taken from the finish times the newest run files record themselves (the recent rate,
with as many workers as really ran; never from file modification times, which a copy of the study
resets), else from ``timings.json``; the ETA divides the runs left by it.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..study.store import LOCK_FILE, RUNS_DIR, StudyStore
from ..study.design import baseline_runs
from ..study.integrity import QUARANTINE_DIR
from .run import TIMINGS_FILE

RATE_WINDOW = 50
"""Newest run files the throughput is measured over: recent enough to follow a change of workers."""


@dataclass(frozen=True)
class RunningRun:
    run_id: str
    host: str
    pid: int
    started: float
    alive: bool | None
    """True/False where the process can be checked (this host); None for another host."""


@dataclass
class StudyStatus:
    path: Path
    planned: list[str]
    done: list[str]
    failed: dict[str, dict[str, Any]]
    running: list[RunningRun]
    missing: list[str]
    quarantined: int
    study_locked: bool
    models_per_minute: float | None
    eta_seconds: float | None
    stale: list[RunningRun] = field(default_factory=list)


def planned_run_ids(store: StudyStore) -> list[str]:
    """The run ids the study's config plans: baselines first, then subset runs (as ``run`` orders them)."""
    config = store.config
    baselines = [spec.run_id for spec in baseline_runs(config, store.num_design_units())]
    return baselines + [f"subset-{index:06d}" for index in range(config.num_models)]


def study_status(study_dir: str | Path, now: float | None = None) -> StudyStatus:
    store = StudyStore.open(study_dir)
    now = time.time() if now is None else now
    planned = planned_run_ids(store)
    finished = store.finished_run_ids()
    done = [run_id for run_id in planned if run_id in finished]
    failures = store.failures()
    markers = [_running_run(marker) for run_id, marker in store.running().items() if run_id not in finished]
    stale = [run for run in markers if run.alive is False]
    running = [run for run in markers if run.alive is not False]
    in_progress = {run.run_id for run in running}
    failed = {run_id: failures[run_id] for run_id in planned if run_id in failures and run_id not in in_progress}
    missing = [r for r in planned if r not in finished and r not in failed and r not in in_progress]
    rate = _models_per_minute(store)
    left = len(planned) - len(done)
    return StudyStatus(
        path=store.path,
        planned=planned,
        done=done,
        failed=failed,
        running=running,
        missing=missing,
        quarantined=_quarantined(store.path),
        study_locked=_lock_held(store.path),
        models_per_minute=rate,
        eta_seconds=left / rate * 60.0 if rate and left else (0.0 if not left else None),
        stale=stale,
    )


def _running_run(marker: dict[str, Any]) -> RunningRun:
    host, pid = str(marker.get("host", "?")), int(marker.get("pid", -1))
    alive = _process_alive(pid) if host == socket.gethostname() else None
    return RunningRun(str(marker.get("run_id")), host, pid, float(marker.get("started", 0.0)), alive)


def _process_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host still runs; a zombie (killed, not yet reaped: a worker
    whose parent was killed too) does not."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc here: the signal probe is all there is
    return state not in ("Z", "X")


def _lock_held(path: Path) -> bool:
    """Whether a ``run`` holds the study lock now (probed without taking it for long, read-only)."""
    try:
        fd = os.open(path / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)  # closing releases a lock this probe took
    return False


def _quarantined(path: Path) -> int:
    folder = path / RUNS_DIR / QUARANTINE_DIR
    if not folder.is_dir():
        return 0
    return sum(1 for p in folder.iterdir() if not p.name.endswith(".reason.txt"))


def _models_per_minute(store: StudyStore) -> float | None:
    """Runs per minute over the ``RATE_WINDOW`` most recently finished runs, by the finish time each
    run file records, else over every ``run`` recorded in ``timings.json``; None when neither says
    anything yet."""
    recent = _recent_finish_times(store)
    if len(recent) >= 3 and recent[-1] > recent[0]:
        return (len(recent) - 1) / (recent[-1] - recent[0]) * 60.0
    path = store.path / TIMINGS_FILE
    if not path.is_file():
        return None
    try:
        history = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    runs = sum(entry.get("runs_executed", 0) for entry in history)
    seconds = sum(entry.get("runs_wall_seconds", 0.0) for entry in history)
    return runs / seconds * 60.0 if runs and seconds > 0 else None


def _recent_finish_times(store: StudyStore) -> list[float]:
    """The ``RATE_WINDOW`` latest finish times, sorted, read from the records of the run files most
    likely to be the newest: the newest by modification time (right while the study is where it ran)
    and the highest run ids (runs start in id order, so these are the newest after a copy has reset
    every modification time). A record without a finish time (a file from a test or another tool)
    counts its file's modification time."""
    stats: dict[Path, float] = {}
    for path in (store.path / RUNS_DIR).glob("*.npz"):
        try:
            if not path.name.startswith("."):
                stats[path] = path.stat().st_mtime
        except FileNotFoundError:
            continue  # moved to quarantine meanwhile
    by_time = sorted(stats, key=stats.__getitem__)[-RATE_WINDOW:]
    by_name = sorted(stats, key=lambda p: p.name)[-RATE_WINDOW:]
    times = [_finish_time(p, stats[p]) for p in dict.fromkeys(by_time + by_name)]
    return sorted(t for t in times if t is not None)[-RATE_WINDOW:]


def _finish_time(path: Path, mtime: float) -> float | None:
    """When the run of ``path`` finished, by its own record; None for a file that cannot be read
    (being replaced or moved to quarantine right now)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            record = json.loads(str(archive["record"]))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None
    finished = record.get("finished") if isinstance(record, dict) else None
    return float(finished) if isinstance(finished, (int, float)) else mtime


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours} h {minutes:02d} min" if hours else (f"{minutes} min {secs:02d} s" if minutes else f"{secs} s")


def format_status(status: StudyStatus, now: float | None = None, max_listed: int = 20) -> str:
    """The status as lines for a terminal: counts, then the failed runs with their errors, the runs
    in progress and (up to ``max_listed``) the missing ones."""
    now = time.time() if now is None else now
    lines = [
        f"{status.path}: {len(status.done)} of {len(status.planned)} runs done, {len(status.failed)} failed, "
        f"{len(status.running)} running, {len(status.missing)} missing"
        + (f"; {status.quarantined} bad files moved to runs/{QUARANTINE_DIR}/" if status.quarantined else ""),
        "a `run` holds the study lock now" if status.study_locked else "no `run` holds the study lock",
    ]
    if status.models_per_minute is not None:
        if status.eta_seconds is None:
            eta = ""
        else:
            eta = f", about {_duration(status.eta_seconds)} left" if status.eta_seconds else ", nothing left"
        lines.append(f"{status.models_per_minute:.2f} models per minute{eta}")
    for run_id, record in status.failed.items():
        attempts = record.get("attempts")
        lines.append(f"failed  {run_id} ({attempts} attempts): {record.get('last_error')}")
    for run in status.running:
        where = f"pid {run.pid} on {run.host}" + ("" if run.alive else " (another host: not checked)")
        lines.append(f"running {run.run_id}: {where}, for {_duration(now - run.started)}")
    for run in status.stale:
        lines.append(f"stale   {run.run_id}: pid {run.pid} on {run.host} is gone (killed mid-run); counted as missing")
    if status.missing and max_listed > 0:
        shown = ", ".join(status.missing[:max_listed])
        more = f" and {len(status.missing) - max_listed} more" if len(status.missing) > max_listed else ""
        lines.append(f"missing {shown}{more}")
    if status.failed or status.missing or status.stale:
        lines.append("`transfer-influence run CONFIG --out STUDY` runs the failed and missing runs")
    return "\n".join(lines)
