"""The study directory: metadata, one atomic file per finished run, consolidated memmaps.

Layout::

    STUDY/study.json            config, results key, seed, versions, git commit, data fingerprints
    STUDY/data.npz              the dataset views every worker trains on
    STUDY/runs/<run_id>.npz     one file per finished run, written to a temp name then renamed
    STUDY/consolidated/*.npy    masks (m×K), outputs per kind (m×n), completion flags (m)

A run file appears whole or not at all, so a study killed at any moment loses at most the runs in
flight, and its file name is its run id, so a run can never be stored twice. ``study.json`` is
checked on every reopen: a config or data change that would mix foreign results is refused.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..errors import StudyBusyError, StudyMismatchError
from .config import NOT_RESULTS, StudyConfig
from .design import RunSpec
from .outputs import OUTPUT_KINDS

STUDY_FILE = "study.json"
DATA_FILE = "data.npz"
RUNS_DIR = "runs"
CONSOLIDATED_DIR = "consolidated"
LOCK_FILE = ".lock"
FORMAT_VERSION = 1


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for name in ("transfer-influence", "numpy", "scipy", "torch", "pydantic"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def atomic_write_npz(path: Path, arrays: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        np.savez(handle, **arrays)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _config_differences(stored: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    diffs: list[str] = []
    for key in sorted(set(stored) | set(new)):
        a, b = stored.get(key), new.get(key)
        name = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += _config_differences(a, b, name + ".")
        elif a != b:
            diffs.append(f"{name}: study has {a!r}, config has {b!r}")
    return diffs


@dataclass
class StudyStore:
    path: Path
    metadata: dict[str, Any]

    # ---- creation and reopening ------------------------------------------------------------
    @classmethod
    def create_or_open(
        cls, path: str | Path, config: StudyConfig, fingerprints: dict[str, str], extra: dict[str, Any]
    ) -> "StudyStore":
        path = Path(path)
        if (path / STUDY_FILE).exists():
            store = cls.open(path)
            store._check_compatible(config, fingerprints)
            # Settings outside the results key follow the latest config (more models, another machine).
            latest = config.model_dump(mode="json")
            changed = {k: latest[k] for k in NOT_RESULTS if store.metadata["config"].get(k) != latest[k]}
            if changed:
                store.metadata["config"].update(changed)
                store._write_metadata()
            return store
        if path.exists() and any(p.name != LOCK_FILE for p in path.iterdir()):
            raise StudyMismatchError(
                f"{path} exists, is not empty and holds no {STUDY_FILE}; choose a new or empty directory"
            )
        (path / RUNS_DIR).mkdir(parents=True, exist_ok=True)
        metadata = {
            "format_version": FORMAT_VERSION,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "results_key": config.results_key(),
            "seed": config.seed,
            "config": config.model_dump(mode="json"),
            "fingerprints": fingerprints,
            "versions": _versions(),
            "git_commit": _git_commit(),
            "platform": {"machine": platform.machine(), "system": platform.system(), "argv": sys.argv},
            **extra,
        }
        store = cls(path, metadata)
        store._write_metadata()
        return store

    @classmethod
    def open(cls, path: str | Path) -> "StudyStore":
        path = Path(path)
        meta_path = path / STUDY_FILE
        if not meta_path.is_file():
            raise FileNotFoundError(
                f"{path} is not a study directory (no {STUDY_FILE}); create one with `transfer-influence run CONFIG`"
            )
        metadata = json.loads(meta_path.read_text())
        if metadata.get("format_version") != FORMAT_VERSION:
            raise StudyMismatchError(
                f"{path} was written in study format {metadata.get('format_version')}, this version reads "
                f"format {FORMAT_VERSION}; use the matching transfer-influence version"
            )
        return cls(path, metadata)

    def _check_compatible(self, config: StudyConfig, fingerprints: dict[str, str]) -> None:
        if self.metadata["results_key"] != config.results_key():
            stored = {k: v for k, v in self.metadata["config"].items() if k not in NOT_RESULTS}
            new = config.model_dump(mode="json", exclude=NOT_RESULTS)
            diffs = _config_differences(stored, new) or ["(settings differ)"]
            raise StudyMismatchError(
                f"{self.path} was created with a different config, so its runs cannot be mixed with "
                f"this one's: {'; '.join(diffs)}. Use a new study directory, or the study's own config."
            )
        changed = [k for k, v in fingerprints.items() if self.metadata["fingerprints"].get(k) != v]
        if changed:
            raise StudyMismatchError(
                f"{self.path}: the data differ from those the study was created with ({', '.join(changed)}); "
                "the dataset files, fonts or loader changed. Use a new study directory."
            )

    def _write_metadata(self) -> None:
        atomic_write_text(self.path / STUDY_FILE, json.dumps(self.metadata, indent=2, sort_keys=True))

    @property
    def config(self) -> StudyConfig:
        return StudyConfig.model_validate(self.metadata["config"])

    @property
    def data_path(self) -> Path:
        return self.path / DATA_FILE

    # ---- runs ------------------------------------------------------------------------------
    def run_path(self, run_id: str) -> Path:
        return self.path / RUNS_DIR / f"{run_id}.npz"

    def finished_run_ids(self) -> set[str]:
        return {p.stem for p in (self.path / RUNS_DIR).glob("*.npz")}

    def remove_partial_files(self) -> int:
        """Delete temp files left by runs that were killed while writing (never a finished run)."""
        leftovers = list((self.path / RUNS_DIR).glob(".*.tmp"))
        for p in leftovers:
            p.unlink(missing_ok=True)
        return len(leftovers)

    def write_run(self, spec: RunSpec, outputs: dict[str, np.ndarray], record: dict[str, Any]) -> None:
        arrays: dict[str, Any] = {f"output__{k}": outputs[k] for k in OUTPUT_KINDS}
        arrays["mask"] = spec.mask
        arrays["record"] = np.asarray(json.dumps({"run_id": spec.run_id, "kind": spec.kind, "index": spec.index, "seed": spec.seed, **record}))
        atomic_write_npz(self.run_path(spec.run_id), arrays)

    def read_run(self, run_id: str) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, Any]]:
        with np.load(self.run_path(run_id), allow_pickle=False) as archive:
            outputs = {k: archive[f"output__{k}"] for k in OUTPUT_KINDS}
            return archive["mask"], outputs, json.loads(str(archive["record"]))


@contextmanager
def study_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on the study directory for as long as runs are being added."""
    path.mkdir(parents=True, exist_ok=True)
    handle = open(path / LOCK_FILE, "w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise StudyBusyError(f"another process is running the study in {path}; wait for it or stop it first") from None
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()
