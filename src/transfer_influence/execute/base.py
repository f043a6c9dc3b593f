"""What every executor shares: the run summary, the completion callback, the executor protocol, and
the one retry policy (:class:`AttemptLedger`) that counts, logs and ends the attempts of every run."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Protocol

from ..errors import RunFailedError
from ..study.config import ExecutionConfig
from ..study.design import RunSpec
from ..study.store import record_failure

__all__ = ["AttemptLedger", "Executor", "ProgressCallback", "RunFailedError", "RunSummary", "LOGGER"]

LOGGER = logging.getLogger("transfer_influence.execute")
# Retries are also printed on the study's progress stream; without a handler of its own the logger
# would fall back to Python's last-resort handler and print every retry to stderr a second time.
LOGGER.addHandler(logging.NullHandler())


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


@dataclass
class AttemptLedger:
    """Attempts of every run of one ``execute`` call, shared by the serial and the process executor so
    that both retry, time out, report and give up in exactly the same way.

    A run may start ``max_attempts`` times in all. Each failed attempt (an exception, a dead worker,
    a run past ``timeout_s``) is counted here; a failure with attempts left is logged (logger
    ``transfer_influence.execute`` and a plain line on ``stream``, so that a user watching the study
    sees it), and the last allowed one raises :class:`RunFailedError` naming the run and its cause.
    With ``study_dir``, that last failure first marks the run failed in the store
    (``runs/<run_id>.failed.json``: every attempt's error and traceback), where ``status`` shows it
    and the next ``run`` retries it.
    """

    max_attempts: int
    timeout_s: float | None = None
    stream: IO[str] | None = None
    failures: dict[str, int] = field(default_factory=dict)
    study_dir: Path | None = None
    errors: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Per run, one entry per failed attempt: ``error``, ``traceback`` (None where the worker could
    not send one: a dead worker, a timeout), ``timed_out``, ``when``."""

    @classmethod
    def from_config(
        cls, execution: ExecutionConfig, stream: IO[str] | None = None, study_dir: Path | None = None
    ) -> "AttemptLedger":
        return cls(execution.max_attempts, execution.run_timeout_s, stream, study_dir=study_dir)

    def attempt_number(self, run_id: str) -> int:
        """The number of the attempt that starts next (1 for a run that never failed)."""
        return self.failures.get(run_id, 0) + 1

    def succeeded(self, summary: RunSummary) -> RunSummary:
        summary.attempts = self.attempt_number(summary.run_id)
        return summary

    def timed_out(self, run_id: str, will_retry: bool = True) -> None:
        """Count an attempt that ran past ``timeout_s`` (see :meth:`failed`)."""
        self.failed(run_id, f"timed out after {self.timeout_s:g} s (execution.run_timeout_s)", will_retry, timed_out=True)

    def failed(
        self, run_id: str, reason: str, will_retry: bool = True, timed_out: bool = False, traceback: str | None = None
    ) -> None:
        """Count a failed attempt of ``run_id``; raises :class:`RunFailedError` once it has used every
        attempt (after recording the failure in the store, given ``study_dir``). ``will_retry`` is
        False when the study is stopping and the run will not start again now (a resume runs it)."""
        attempt = self.attempt_number(run_id)
        self.failures[run_id] = attempt
        self.errors.setdefault(run_id, []).append(
            {"attempt": attempt, "error": reason, "traceback": traceback, "timed_out": timed_out,
             "when": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        )
        if attempt >= self.max_attempts:
            if self.study_dir is not None:
                record_failure(self.study_dir, run_id, self.errors[run_id], self.max_attempts)
            hint = "; raise execution.run_timeout_s if runs legitimately take this long" if timed_out else ""
            raise RunFailedError(
                f"run {run_id} failed {attempt} times (last: {reason}){hint}; finished runs are kept — fix the "
                "cause and run the same command again to resume"
            )
        outcome = "retrying" if will_retry else "not retried now: the study is stopping (a resume runs it)"
        self._report(f"run {run_id} attempt {attempt} of {self.max_attempts} failed: {reason}; {outcome}")

    def attempt_failed(
        self, run_id: str, reason: str, will_retry: bool, timed_out: bool = False, traceback: str | None = None
    ) -> RunFailedError | None:
        """:meth:`timed_out` or :meth:`failed`, for an executor's event loop: the error that ends the
        study is returned (to be raised once the runs in flight have finished), not raised."""
        try:
            if timed_out:
                self.timed_out(run_id, will_retry)
            else:
                self.failed(run_id, reason, will_retry, traceback=traceback)
        except RunFailedError as error:
            return error
        return None

    def _report(self, message: str) -> None:
        LOGGER.warning(message)
        if self.stream is not None:
            print(f"  {message}", file=self.stream, flush=True)
