"""Shared by the benchmarks: run under the malloc settings the project uses for training."""

from __future__ import annotations

import os
import sys

from transfer_influence.execute.work import GLIBC_TUNABLES


def ensure_malloc_tuning() -> None:
    """glibc reads GLIBC_TUNABLES only at process start: re-execute this script with it set."""
    if os.environ.get("GLIBC_TUNABLES") != GLIBC_TUNABLES:
        os.environ["GLIBC_TUNABLES"] = GLIBC_TUNABLES
        os.execv(sys.executable, [sys.executable, *sys.argv])
