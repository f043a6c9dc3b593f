"""Progress of a long step: a live tqdm bar with ETA on a terminal, plain lines in logs."""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import IO, Iterator

from tqdm import tqdm

from ..execute import RunSummary


@contextmanager
def progress_bar(total: int, enabled: bool, stream: IO[str]) -> Iterator:
    """A tqdm bar with ETA and models/minute on a terminal; a line every 10% otherwise (logs, CI)."""
    interactive = enabled and stream.isatty()
    bar = tqdm(total=total, unit="model", file=stream, disable=not interactive, dynamic_ncols=True)
    started = time.perf_counter()
    step = max(1, total // 10)
    count = 0

    def on_done(summary: RunSummary) -> bool:
        nonlocal count
        count += 1
        minutes = (time.perf_counter() - started) / 60
        rate = count / minutes if minutes > 0 else 0.0
        bar.update(1)
        bar.set_postfix_str(f"{rate:.0f} models/min, target acc {summary.target_accuracy:.3f}", refresh=False)
        if enabled and not interactive and (count % step == 0 or count == total):
            eta = (total - count) / rate if rate else float("nan")
            print(
                f"  {count}/{total} runs, {rate:.1f} models/min, ETA {eta:.1f} min, "
                f"last target acc {summary.target_accuracy:.3f}",
                file=stream,
                flush=True,
            )
        return False

    try:
        yield on_done
    finally:
        bar.close()
