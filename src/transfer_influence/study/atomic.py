"""Atomic, durable file writes for the study directory (numpy and the standard library only).

Every file of a study is written the same way: to a unique temporary name in the target's own
folder, flushed and fsynced, renamed over the target, and then the folder itself is fsynced so
that the rename survives a power cut too. A reader, or a study restarted after a crash, therefore
sees the old file or the new one, never a torn one. Temporary names are unique per write, so two
writers of the same target (a retried run, a reader consolidating beside the study) never write
into each other's temporary file; they all match ``.NAME.*.tmp``, so the holder of the lock that
every writer of a folder takes can delete what a killed writer left behind.

This module imports nothing from the package, so the store and the dataset views can both use it.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any, BinaryIO, Callable

import numpy as np

TEMP_SUFFIX = ".tmp"
_FILE_MODE = 0o666
"""Created files get the usual permissions less the umask (as ``open`` gives them); ``mkstemp``'s
0600 would make a study unreadable to the colleagues a shared results directory is meant for."""


def new_temp_file(target: Path) -> Path:
    """Create an empty file with a unique temporary name beside ``target`` and return its path."""
    for _ in range(100):
        candidate = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(6)}{TEMP_SUFFIX}")
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
        except FileExistsError:
            continue
        os.close(fd)
        return candidate
    raise FileExistsError(f"could not create a unique temporary file beside {target}")


def fsync_file(path: Path) -> None:
    """Flush a file's data to disk (for files filled through a memory map or by a library)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_directory(folder: Path) -> None:
    """Make the renames and creations in ``folder`` durable: a rename lives in the folder's data."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_durably(temp: Path, target: Path) -> None:
    """Rename a fully written and fsynced ``temp`` over ``target`` and fsync the folder."""
    os.replace(temp, target)
    fsync_directory(target.parent)


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write ``path`` atomically and durably; ``write`` fills the open binary handle."""
    temp = new_temp_file(path)
    try:
        with open(temp, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        replace_durably(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda handle: handle.write(data))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_npz(path: Path, arrays: dict[str, Any]) -> None:
    atomic_write(path, lambda handle: np.savez(handle, **arrays))


def temp_files(folder: Path) -> list[Path]:
    """Temporary files of interrupted writes in ``folder`` (those of live writers included)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob(f".*{TEMP_SUFFIX}") if p.is_file())


def remove_temp_files(folder: Path) -> int:
    """Delete the temporary files in ``folder``; returns how many.

    Only for a caller holding the lock that every writer of ``folder`` holds while it writes: then
    no temporary file there can belong to a live writer, and each is the remains of a killed one.
    """
    leftovers = temp_files(folder)
    for path in leftovers:
        path.unlink(missing_ok=True)
    return len(leftovers)
