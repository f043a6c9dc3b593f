"""Progress: plain lines with count, rate and ETA in logs; nothing when disabled; a bar on a terminal."""

from __future__ import annotations

import io

from transfer_influence.progress import Progress


def test_log_lines_every_tenth_with_eta() -> None:
    stream = io.StringIO()
    with Progress(20, "model", label="runs", stream=stream) as progress:
        for _ in range(20):
            progress.update("acc 0.9")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 10 and "\r" not in stream.getvalue()
    assert lines[0].startswith("  runs: 2/20 models") and "ETA" in lines[0] and lines[0].endswith("acc 0.9")
    assert lines[-1].startswith("  runs: 20/20 models") and "ETA 0.0 min" in lines[-1]


def test_disabled_progress_prints_nothing() -> None:
    stream = io.StringIO()
    with Progress(5, "model", stream=stream, enabled=False) as progress:
        for _ in range(5):
            progress.update()
    assert stream.getvalue() == "" and progress.count == 5


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_live_bar_not_log_lines() -> None:
    stream = _Terminal()
    with Progress(4, "model", stream=stream) as progress:
        for _ in range(4):
            progress.update()
    text = stream.getvalue()
    assert "\r" in text and "4/4" in text and "ETA" not in text
