"""Checking one run file before its numbers are used, and moving a bad one aside.

A run file is trusted only when it reads whole and says it is what its name says:

* every member reads back (numpy's zip reader checks each member's CRC-32, so a truncated or
  overwritten file fails here);
* its record names the run its file name names (a copy under another name is a duplicate);
* its record's ``results_key``, where present, is the study's (a file copied in from another study
  is foreign);
* its record's ``checksum``, where present, holds a SHA-256 per array and one of the record's other
  fields, and each matches (a file that is a valid archive but whose numbers were changed). Only the
  optional ``predicted`` member may be absent, as in files written before it existed.

Files written before checksums were recorded have neither field: they pass on the first two checks,
since they were written by the same atomic rename and the zip CRCs still guard their bytes.

A bad file is *moved* (never deleted) to ``runs/quarantine/`` beside a ``.reason.txt`` saying why;
the run then counts as missing, so the next ``run`` runs it again. numpy and the standard library only.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Collection, Mapping

import numpy as np

from .atomic import atomic_write_text, fsync_directory
from .outputs import OUTPUT_KINDS

RECORD_MEMBER = "record"
OPTIONAL_MEMBERS = frozenset({"predicted"})
"""Members a valid run file may lack (files written before predicted labels were recorded)."""
CHECKSUM_FIELD = "checksum"
RESULTS_KEY_FIELD = "results_key"
QUARANTINE_DIR = "quarantine"
SUBSET_RUN_ID = re.compile(r"^subset-(\d{6})$")
"""The only names whose files are subset runs: a copy named ``subset-000003 (1).npz`` is not one."""
MASK_MEMBER = "mask"
"""A class-level run's mask: one bool per source class."""
PACKED_MASK_MEMBER = "mask_packed"
"""An example-level run's mask: one bit per source training example (``np.packbits``, big-endian
bit order), so that a run over L examples stores L/8 bytes rather than L."""
MASK_LENGTH_FIELD = "mask_length"
"""Run-record field of an example-level run: the number of bits of its packed mask that are units."""


def pack_mask(mask: np.ndarray) -> np.ndarray:
    """A boolean mask as bits (``np.packbits``): 8 units per byte."""
    return np.packbits(np.asarray(mask, dtype=bool))


def unpack_mask(packed: np.ndarray, length: int) -> np.ndarray:
    """The first ``length`` bits of a packed mask, as bools."""
    return np.unpackbits(np.asarray(packed, dtype=np.uint8), count=length).astype(bool)


def run_mask(arrays: Mapping[str, np.ndarray], record: Mapping[str, Any]) -> np.ndarray:
    """A run file's mask as bools, whether stored per class (``mask``) or bit-packed per example."""
    if PACKED_MASK_MEMBER in arrays:
        return unpack_mask(arrays[PACKED_MASK_MEMBER], int(record[MASK_LENGTH_FIELD]))
    return np.asarray(arrays[MASK_MEMBER], dtype=bool)


@dataclass(frozen=True)
class FileIdentity:
    """What changes whenever a file's content is replaced: a file whose identity is unchanged since
    it was checked need not be read again (``ctime`` cannot be set back by a user)."""

    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, stat: os.stat_result) -> "FileIdentity":
        return cls(stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)

    def as_row(self) -> tuple[int, int, int, int]:
        return (self.inode, self.size, self.mtime_ns, self.ctime_ns)


@dataclass
class RunFileCheck:
    """The outcome of reading one run file: ``problem`` is None for a good file, whose members and
    record are then kept so that the caller need not read it a second time."""

    path: Path
    identity: FileIdentity | None
    problem: str | None
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.problem is None


def array_checksum(array: np.ndarray) -> str:
    """SHA-256 of an array's dtype, shape and bytes."""
    array = np.ascontiguousarray(array)
    digest = hashlib.sha256(f"{array.dtype.str}|{array.shape}\n".encode())
    digest.update(array.tobytes())
    return "sha256:" + digest.hexdigest()


def record_checksum(record: Mapping[str, Any]) -> str:
    """SHA-256 of the record's fields but the checksum itself, as sorted JSON."""
    rest = {key: value for key, value in record.items() if key != CHECKSUM_FIELD}
    return "sha256:" + hashlib.sha256(json.dumps(rest, sort_keys=True).encode()).hexdigest()


def payload_checksums(arrays: Mapping[str, np.ndarray], record: Mapping[str, Any]) -> dict[str, str]:
    """One checksum per array member and one for the record's other fields: what a run file must
    hold for its numbers to be the ones written. Per member, so that a reader can say which part
    changed, and so that an optional member may be left out without voiding the rest."""
    sums = {name: array_checksum(array) for name, array in sorted(arrays.items()) if name != RECORD_MEMBER}
    sums[RECORD_MEMBER] = record_checksum(record)
    return sums


def sealed_record(arrays: Mapping[str, np.ndarray], record: dict[str, Any]) -> dict[str, Any]:
    """``record`` with its checksums added. The record goes through JSON first, so that the checksum
    is computed on exactly the values a reader parses back."""
    plain = json.loads(json.dumps(record))
    plain[CHECKSUM_FIELD] = payload_checksums(arrays, plain)
    return plain


def check_run_file(path: Path, results_keys: Collection[str]) -> RunFileCheck:
    """Read ``path`` whole and say what is wrong with it, if anything (see the module docstring).
    ``results_keys``: the study's results key, with any key it had before a format upgrade."""
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        return RunFileCheck(path, None, "the file is gone")
    with handle:
        identity = FileIdentity.of(os.fstat(handle.fileno()))
        try:
            with np.load(handle, allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in archive.files}
            record = json.loads(str(arrays.pop(RECORD_MEMBER)))
        except Exception as exc:  # noqa: BLE001 - a damaged file fails in many ways; each is the same verdict
            return RunFileCheck(path, identity, f"unreadable, truncated or corrupt ({exc.__class__.__name__}: {exc})")
    problem = _record_problem(path, arrays, record, results_keys)
    if problem is not None:
        return RunFileCheck(path, identity, problem)
    return RunFileCheck(path, identity, None, arrays, record)


def _record_problem(path: Path, arrays: dict[str, np.ndarray], record: Any, results_keys: Collection[str]) -> str | None:
    if not isinstance(record, dict):
        return "its record is not a JSON object"
    has_mask = MASK_MEMBER in arrays or PACKED_MASK_MEMBER in arrays
    missing = [name for name in ([] if has_mask else [MASK_MEMBER]) + [f"output__{k}" for k in OUTPUT_KINDS]
               if name not in arrays]
    if missing:
        return f"members missing: {', '.join(missing)}"
    if PACKED_MASK_MEMBER in arrays:
        length = record.get(MASK_LENGTH_FIELD)
        if not isinstance(length, int) or arrays[PACKED_MASK_MEMBER].size != (length + 7) // 8:
            return f"its packed mask does not hold the {length!r} units its record names"
    if record.get("run_id") != path.stem:
        return f"it holds run {record.get('run_id')!r}, not {path.stem!r}: a duplicate or a copy under another name"
    key = record.get(RESULTS_KEY_FIELD)
    if key is not None and key not in results_keys:
        return f"it was written by another study (results key {key}, this study's is {' or '.join(sorted(results_keys))})"
    stored = record.get(CHECKSUM_FIELD)
    return None if stored is None else _checksum_problem(arrays, record, stored)


def _checksum_problem(arrays: dict[str, np.ndarray], record: dict[str, Any], stored: Any) -> str | None:
    if not isinstance(stored, dict):
        return "its checksum field is malformed"
    if stored.get(RECORD_MEMBER) != record_checksum(record):
        return "its record does not match its checksum"
    unlisted = sorted(set(arrays) - set(stored))
    if unlisted:
        return f"members not covered by its checksum: {', '.join(unlisted)}"
    for name, expected in stored.items():
        if name == RECORD_MEMBER:
            continue
        if name not in arrays:
            if name in OPTIONAL_MEMBERS:
                continue
            return f"member {name} is missing"
        if array_checksum(arrays[name]) != expected:
            return f"member {name} does not match its checksum"
    return None


def quarantine_run_file(check: RunFileCheck, stream: IO[str] | None = None) -> Path | None:
    """Move a bad run file to ``runs/quarantine/`` with a reason file; returns the new path.

    The file is moved only while it is still the one that was checked (same identity): a writer
    that has since renamed a fresh file over it wins, and that file is checked on its own later.
    Returns None when the file changed or is gone.
    """
    path = check.path
    try:
        current = FileIdentity.of(os.stat(path))
    except FileNotFoundError:
        return None
    if check.identity is not None and current != check.identity:
        return None
    folder = path.parent / QUARANTINE_DIR
    folder.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    destination = folder / f"{path.name}.{stamp}-{secrets.token_hex(3)}"
    os.replace(path, destination)
    fsync_directory(path.parent)
    atomic_write_text(
        destination.with_name(destination.name + ".reason.txt"),
        f"{path.name}: {check.problem}\nmoved aside {time.strftime('%Y-%m-%dT%H:%M:%S%z')}; the run counts as "
        "missing and `run` runs it again\n",
    )
    if stream is not None:
        print(
            f"  moved {path.parent.name}/{path.name} aside to {folder.name}/{destination.name}: {check.problem}; "
            "the run will be run again",
            file=stream,
            flush=True,
        )
    return destination
