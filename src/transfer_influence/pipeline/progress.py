"""Progress of a study's runs: models/minute, ETA and the last model's target accuracy."""

from __future__ import annotations

from contextlib import contextmanager
from typing import IO, Callable, Iterator

from ..execute import RunSummary
from ..progress import Progress


@contextmanager
def progress_bar(total: int, enabled: bool, stream: IO[str]) -> Iterator[Callable[[RunSummary], bool]]:
    """A live bar on a terminal, a line every 10% otherwise (logs, CI); the callback never stops a study."""
    with Progress(total, "run", stream=stream, enabled=enabled) as progress:

        def on_done(summary: RunSummary) -> bool:
            progress.update(f"target acc {summary.target_accuracy:.3f}")
            return False

        yield on_done
