"""Progress of a long step, for every layer: a live tqdm bar with ETA on a terminal, and a plain
line with the count, rate and ETA about every tenth of the work in logs and CI (no carriage
returns to garble a log file)."""

from __future__ import annotations

import sys
import time
from typing import IO

from tqdm import tqdm


class Progress:
    """``update()`` once per finished item; ``note`` is shown beside the bar and in the log lines."""

    def __init__(self, total: int, unit: str, label: str = "", stream: IO[str] | None = None, enabled: bool = True) -> None:
        self.total = max(0, int(total))
        self.unit = unit
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.interactive = enabled and _is_terminal(self.stream)
        self.count = 0
        self._started = time.perf_counter()
        self._every = max(1, self.total // 10)
        self._bar = tqdm(
            total=self.total, unit=unit, desc=label or None, file=self.stream,
            disable=not self.interactive, dynamic_ncols=True,
        )

    @property
    def rate_per_minute(self) -> float:
        minutes = (time.perf_counter() - self._started) / 60
        return self.count / minutes if minutes > 0 else 0.0

    def eta_minutes(self) -> float:
        rate = self.rate_per_minute
        return (self.total - self.count) / rate if rate > 0 else float("nan")

    def update(self, note: str = "") -> None:
        self.count += 1
        self._bar.update(1)
        if note:
            self._bar.set_postfix_str(note, refresh=False)
        if self.enabled and not self.interactive and (self.count % self._every == 0 or self.count == self.total):
            prefix = f"  {self.label}: " if self.label else "  "
            print(
                f"{prefix}{self.count}/{self.total} {self.unit}s, {self.rate_per_minute:.1f} {self.unit}s/min, "
                f"ETA {self.eta_minutes():.1f} min" + (f", {note}" if note else ""),
                file=self.stream,
                flush=True,
            )

    def close(self) -> None:
        self._bar.close()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
