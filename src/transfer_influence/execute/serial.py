"""Runs in the calling process: debugging, tiny studies, one GPU, and the ``work`` command.

``execution.run_timeout_s`` is enforced with SIGALRM, best effort: only in the main thread of a
platform with ``signal.setitimer`` (elsewhere the limit is logged as not enforced), and the alarm
interrupts Python code, so a run stuck inside one long native call ends only when that call
returns. The process executor has no such limits: it kills the worker process.
"""

from __future__ import annotations

import signal
import sys
import threading
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Iterator

from ..study.config import StudyConfig
from ..study.design import RunSpec
from .base import LOGGER, AttemptLedger, ProgressCallback, RunSummary
from .work import execute_one, init_worker


class RunTimedOut(BaseException):
    """Raised by the alarm inside a run. A BaseException, so that no ``except Exception`` in the
    training code can swallow it."""


@dataclass
class SerialExecutor:
    study_dir: Path
    config: StudyConfig
    stream: IO[str] | None = None

    def execute(self, specs: list[RunSpec], on_done: ProgressCallback) -> list[RunSummary]:
        init_worker(str(self.study_dir), self.config.model_dump_json(), self.config.execution.threads_per_worker)
        ledger = AttemptLedger.from_config(self.config.execution, self.stream, self.study_dir)
        done: list[RunSummary] = []
        for spec in specs:
            summary = _run_with_retries(spec, ledger)
            done.append(summary)
            if on_done(summary):
                break
        return done


def _run_with_retries(spec: RunSpec, ledger: AttemptLedger) -> RunSummary:
    """Attempts of one run until one succeeds; the ledger raises once none are left."""
    while True:
        try:
            with alarm_after(ledger.timeout_s):
                summary = execute_one(spec)
        except RunTimedOut:
            ledger.timed_out(spec.run_id)
            continue
        except Exception as exc:  # noqa: BLE001 - any failure of a run is counted and retried
            ledger.failed(spec.run_id, repr(exc), traceback=traceback.format_exc())
            continue
        return ledger.succeeded(summary)


@contextmanager
def alarm_after(seconds: float | None) -> Iterator[None]:
    """Raise :class:`RunTimedOut` in the body once ``seconds`` have passed (no limit for None)."""
    if seconds is None:
        yield
        return
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        LOGGER.warning(
            "execution.run_timeout_s is not enforced by the serial executor off the main thread or on %s; "
            "use the process executor", sys.platform,
        )
        yield
        return

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        raise RunTimedOut()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
