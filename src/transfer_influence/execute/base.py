"""What every executor shares: the run summary, the completion callback, the executor protocol."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

from ..errors import RunFailedError
from ..study.design import RunSpec

__all__ = ["Executor", "ProgressCallback", "RunFailedError", "RunSummary"]


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
