"""A report folder written whole or not at all.

Why: a report is a dozen figures, tables and a page that refer to each other. Written in place, a
report that fails half-way (a study too small for one of its steps, a full disk, Ctrl-C) leaves new
files beside the last report's, and a second report with another output kind or estimator leaves
the first one's figures behind (a projection of a class the new ranking no longer puts on top). So
every report is written into a fresh staging folder beside its own and swapped in only once it is
complete; a failure removes the staging folder and leaves the previous report as it was.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Collection, Iterator


@contextmanager
def staged_folder(out: Path, keep: Collection[str] = ()) -> Iterator[Path]:
    """Yield an empty staging folder; on success it replaces ``out``'s files, and every subfolder of
    ``out`` the staging folder lacks is carried over (other targets' reports nested in the primary's,
    named in ``keep``, an older release's ``<name>/`` layout, a user's own folder); on any error it is
    removed and ``out`` is left untouched."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-", dir=out.parent))
    staging.chmod(0o777 & ~_umask())  # mkdtemp's 0700 would make a shared study's report private
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _publish(staging, out, keep)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _publish(staging: Path, out: Path, keep: Collection[str]) -> None:
    """Swap ``staging`` in for ``out`` by two renames on one file system, then delete the old folder."""
    if not out.exists():
        staging.rename(out)
        return
    # Sub-folders are never this report's own files (it writes files only): another target's report
    # (``keep``), an older layout's ``<name>/`` or a user's own folder all move into the new one.
    carried = set(keep) | {child.name for child in out.iterdir() if child.is_dir()}
    for name in sorted(carried):
        if (out / name).is_dir() and not (staging / name).exists():
            (out / name).rename(staging / name)
    retired = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    retired.rmdir()
    out.rename(retired)
    staging.rename(out)
    shutil.rmtree(retired, ignore_errors=True)
