"""The study directory: metadata, one atomic file per finished run, consolidated memmaps, locks.

Layout::

    STUDY/study.json            config, results key, numerics, seed, versions, git commit, data fingerprints
    STUDY/data.npz              the dataset views every worker trains on
    STUDY/runs/<run_id>.npz     one file per finished run, written to a temp name then renamed: mask
                                (``mask``: one bool per class; in a ``design.unit: example`` study
                                ``mask_packed``: one bit per source example, its length in the
                                record's ``mask_length``), record, the outputs, and the predicted labels (``predicted``, absent
                                from files written before they were recorded); the record holds the
                                study's results key and a checksum of the file's contents. A study
                                with extra targets adds ``output__<name>__<kind>`` and
                                ``predicted__<name>`` per extra target (and their accuracies in the
                                record's ``extra_target_accuracy``); the primary's stay unnamed
    STUDY/runs/<run_id>.failed.json  a run whose every attempt failed: errors and tracebacks
    STUDY/runs/quarantine/      bad run files moved aside (``integrity``), each with a reason file
    STUDY/running/<run_id>.json one marker per run in progress (host, pid, start), any executor
    STUDY/consolidated/*.npy    masks (``masks_packed``, bit-packed rows, in an example study), outputs
                                per kind, accuracies: one row per subset run index,
                                sized to the finished runs; completed.npz flags the rows written
    STUDY/.lock                 held by ``run`` for as long as it adds runs
    STUDY/.consolidate.lock     held by whoever consolidates (the running study or a reader)

Every file is written atomically and durably (see ``atomic``): a run file appears whole or not at
all, so a study killed at any moment loses at most the runs in flight, and its file name is its run
id, so a run can never be stored twice. ``study.json`` is checked on every reopen: a config, data or
numerics change (device type, bf16 autocast) that would mix foreign results is refused.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..errors import InputError, StudyBusyError, StudyMismatchError
from .atomic import atomic_write_npz, atomic_write_text, remove_temp_files, temp_files
from .config import NOT_RESULTS, StudyConfig, stored_config
from .design import RunSpec, design_mask, design_unit_count, train_seed
from .integrity import (
    MASK_LENGTH_FIELD,
    MASK_MEMBER,
    PACKED_MASK_MEMBER,
    RESULTS_KEY_FIELD,
    SUBSET_RUN_ID,
    RunFileCheck,
    check_run_file,
    pack_mask,
    run_mask,
    sealed_record,
)
from .outputs import OUTPUT_KINDS

STUDY_FILE = "study.json"
DATA_FILE = "data.npz"
RUNS_DIR = "runs"
CONSOLIDATED_DIR = "consolidated"
LOCK_FILE = ".lock"
CONSOLIDATE_LOCK_FILE = ".consolidate.lock"
PREDICTED_MEMBER = "predicted"
"""Run-file member with the predicted label of every target test example (int16)."""
EXTRA_ACCURACY_FIELD = "extra_target_accuracy"
"""Run-record field: each extra target's accuracy, by name."""


def output_member(kind: str, target: str | None = None) -> str:
    """Run-file member of one output kind: ``output__<kind>`` for the primary target (as in every
    one-target study), ``output__<target>__<kind>`` for an extra target."""
    return f"output__{kind}" if target is None else f"output__{target}__{kind}"


def predicted_member(target: str | None = None) -> str:
    return PREDICTED_MEMBER if target is None else f"{PREDICTED_MEMBER}__{target}"
FORMAT_VERSION = 2
"""Format 2 records the numerics (device type, bf16 autocast) in ``study.json`` and its results key."""
READABLE_FORMATS = (1, 2)
"""Format 1 differs only in lacking the numerics: it is read as it is and upgraded when extended."""
LEGACY_TEMP_NAMES = (DATA_FILE + ".tmp",)
FAILED_SUFFIX = ".failed.json"
"""``runs/<run_id>.failed.json``: a run whose attempts all failed (never a ``.npz``, so never a result)."""
RUNNING_DIR = "running"
MAX_RECORDED_ERRORS = 10
"""A failure record keeps the latest errors only: a run retried over many invocations stays small."""
"""Fixed temporary names older versions used in the study folder (cleaned like the unique ones)."""


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


def _numerics_differences(stored: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return [
        f"numerics.{key}: study has {stored.get(key)!r}, this run has {new.get(key)!r}"
        for key in sorted(set(stored) | set(new))
        if stored.get(key) != new.get(key)
    ]


def _numerics_fix(stored: dict[str, Any]) -> str:
    return (
        f"on a machine where execution.device resolves to {stored['device']!r} with bf16 autocast "
        f"{'on' if stored['bf16_autocast'] else 'off'} (execution.amp acts on CUDA only)"
    )


def _legacy_numerics(metadata: dict[str, Any]) -> dict[str, Any] | None:
    """The numerics of a format-1 study, which did not record them: its config's ``execution.device``
    says which device ran unless it was 'auto' (then None: unknown)."""
    execution = metadata["config"].get("execution", {})
    device = execution.get("device", "cpu")
    if device not in ("cpu", "cuda"):
        return None
    return stored_config(metadata["config"]).run_numerics(device)


@dataclass
class StudyStore:
    path: Path
    metadata: dict[str, Any]

    # ---- creation and reopening ------------------------------------------------------------
    @classmethod
    def create_or_open(
        cls,
        path: str | Path,
        config: StudyConfig,
        numerics: dict[str, Any],
        fingerprints: dict[str, str],
        extra: dict[str, Any],
    ) -> "StudyStore":
        """Create the study, or reopen it after checking that ``config`` and ``numerics`` (this
        machine's resolved device type and autocast, ``StudyConfig.run_numerics``) give the same
        numbers as the study's runs. The caller holds the study lock."""
        path = Path(path)
        if (path / STUDY_FILE).exists():
            store = cls.open(path)
            store.check_compatible(config, numerics, fingerprints)
            upgrade = store.metadata["format_version"] != FORMAT_VERSION
            if upgrade:
                previous = [*store.metadata.get("previous_results_keys", []), store.metadata["results_key"]]
                store.metadata.update(
                    format_version=FORMAT_VERSION, numerics=numerics, results_key=config.results_key(numerics),
                    previous_results_keys=previous,
                )
            # Settings outside the results key follow the latest config (more models, another machine).
            latest = config.model_dump(mode="json")
            changed = {k: latest[k] for k in NOT_RESULTS if store.metadata["config"].get(k) != latest[k]}
            if changed:
                store.metadata["config"].update(changed)
            if changed or upgrade:
                store._write_metadata()
            return store
        leftovers = {LOCK_FILE, CONSOLIDATE_LOCK_FILE, *(p.name for p in temp_files(path))}
        if path.exists() and any(p.name not in leftovers for p in path.iterdir()):
            raise StudyMismatchError(
                f"{path} exists, is not empty and holds no {STUDY_FILE}; choose a new or empty directory"
            )
        (path / RUNS_DIR).mkdir(parents=True, exist_ok=True)
        metadata = {
            "format_version": FORMAT_VERSION,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "results_key": config.results_key(numerics),
            "numerics": numerics,
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
        if metadata.get("format_version") not in READABLE_FORMATS:
            raise StudyMismatchError(
                f"{path} was written in study format {metadata.get('format_version')}, this version reads "
                f"formats {', '.join(map(str, READABLE_FORMATS))}; use the matching transfer-influence version"
            )
        return cls(path, metadata)

    @property
    def numerics(self) -> dict[str, Any] | None:
        """Device type and bf16 autocast the study's runs used (None: a format-1 study on 'auto')."""
        if self.metadata["format_version"] == 1:
            return _legacy_numerics(self.metadata)
        return dict(self.metadata["numerics"])

    def _known_numerics(self) -> dict[str, Any]:
        numerics = self.numerics
        if numerics is None:
            raise StudyMismatchError(
                f"{self.path} was written by an older version that did not record which device its runs "
                "used, and its execution.device was 'auto'; its runs cannot be safely extended. Read it as "
                "it is (`influence`, `report`), or run the config into a new study directory."
            )
        return numerics

    def _refuse(self, diffs: list[str], fix: str) -> None:
        raise StudyMismatchError(
            f"{self.path} was created with different settings, so its runs cannot be mixed with "
            f"this one's: {'; '.join(diffs)}. {fix}."
        )

    def check_numerics(self, numerics: dict[str, Any]) -> None:
        """Refuse to add runs with numerics other than the study's (for writers that use the study's
        own config, such as a single run started by an external scheduler)."""
        stored = self._known_numerics()
        diffs = _numerics_differences(stored, numerics)
        if diffs:
            self._refuse(diffs, "Run it " + _numerics_fix(stored))

    def check_compatible(self, config: StudyConfig, numerics: dict[str, Any], fingerprints: dict[str, str]) -> None:
        stored_numerics = self._known_numerics()
        legacy = self.metadata["format_version"] == 1
        expected_key = config.results_key(None if legacy else numerics)
        numeric_diffs = _numerics_differences(stored_numerics, numerics)
        if self.metadata["results_key"] != expected_key or numeric_diffs:
            stored = {k: v for k, v in self.metadata["config"].items() if k not in NOT_RESULTS}
            new = config.model_dump(mode="json", exclude=NOT_RESULTS)
            diffs = _config_differences(stored, new) + numeric_diffs or ["(settings differ)"]
            fix = "Use a new study directory, or the study's own config"
            self._refuse(diffs, fix + (" " + _numerics_fix(stored_numerics) if numeric_diffs else ""))
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
        return stored_config(self.metadata["config"])

    @property
    def data_path(self) -> Path:
        return self.path / DATA_FILE

    @property
    def example_units(self) -> bool:
        """Whether the study's subsets are drawn over source examples (``design.unit: example``)."""
        return self.metadata["config"].get("design", {}).get("unit", "class") == "example"

    def num_design_units(self) -> int:
        """Units of the study's masks: its source classes, or its source training examples."""
        if not self.example_units:
            return len(self.metadata["class_names"])
        return design_unit_count(self.config, len(self.metadata["class_names"]), int(self.metadata["data"]["source_train_examples"]))

    # ---- runs ------------------------------------------------------------------------------
    def run_path(self, run_id: str) -> Path:
        return self.path / RUNS_DIR / f"{run_id}.npz"

    def finished_run_ids(self) -> set[str]:
        return {p.stem for p in (self.path / RUNS_DIR).glob("*.npz") if not p.name.startswith(".")}

    def finished_subset_indices(self) -> list[int]:
        """Sorted indices of the subset runs whose files are complete (only files named exactly
        ``subset-NNNNNN.npz``: a stray copy such as ``subset-000003 (1).npz`` is no run)."""
        found = (SUBSET_RUN_ID.match(r) for r in self.finished_run_ids())
        return sorted(int(m.group(1)) for m in found if m is not None)

    def accepted_results_keys(self) -> set[str]:
        """The results keys a run file of this study may carry: the study's own, any it had before a
        format upgrade changed it (numerics joined the key in format 2), and for a format-1 study
        read as it is, the key it gets once upgraded (a ``work`` run may have written that one)."""
        keys = {self.metadata["results_key"], *self.metadata.get("previous_results_keys", [])}
        if self.metadata["format_version"] == 1:
            numerics = self.numerics
            if numerics is not None:
                keys.add(self.config.results_key(numerics))
        return keys

    def check_run(self, run_id: str, config: StudyConfig | None = None) -> RunFileCheck:
        """Read a run file whole and check it (``integrity.check_run_file``). A subset-run file from
        before run files recorded their results key must also hold the mask and seed the study's
        design gives its index, which catches another study's file of that age. A study with extra
        targets also needs each one's outputs in the file. ``config``: the study's, when the caller
        already has it."""
        check = check_run_file(self.run_path(run_id), self.accepted_results_keys())
        config = config or self.config
        if check.ok and config.extra_targets:
            missing = [
                output_member(kind, t.name) for t in config.extra_targets for kind in OUTPUT_KINDS
                if output_member(kind, t.name) not in check.arrays
            ]
            if missing or not isinstance(check.record.get(EXTRA_ACCURACY_FIELD), dict):
                check.problem = f"it lacks the outputs of the study's extra targets ({', '.join(missing) or 'accuracies'})"
                check.arrays, check.record = {}, {}
                return check
        match = SUBSET_RUN_ID.match(run_id)
        if not check.ok or match is None or RESULTS_KEY_FIELD in check.record:
            return check
        index = int(match.group(1))
        mask = run_mask(check.arrays, check.record)
        expected = design_mask(config, index, mask.shape[0])
        if not np.array_equal(mask, expected) or check.record.get("seed") != train_seed(config, index):
            check.problem = "its mask or seed is not the one this study's design gives that run: another study's file"
            check.arrays, check.record = {}, {}
        return check

    def remove_partial_files(self) -> int:
        """Delete temp files that killed writers left in ``runs/`` and the study folder (never a
        finished file); returns how many.

        Call holding the study lock, before any worker starts: every writer there (workers, the
        metadata, the data views, the timings) works for the lock holder, so no temp file can belong
        to a live writer. ``consolidated/`` is cleaned by ``consolidate`` under its own lock.
        """
        removed = remove_temp_files(self.path / RUNS_DIR) + remove_temp_files(self.path)
        removed += remove_temp_files(self.path / RUNNING_DIR)
        for name in LEGACY_TEMP_NAMES:
            legacy = self.path / name
            if legacy.is_file():
                legacy.unlink()
                removed += 1
        return removed

    def write_run(
        self,
        spec: RunSpec,
        outputs: dict[str, np.ndarray],
        record: dict[str, Any],
        predicted: np.ndarray | None = None,
        extra_targets: dict[str, tuple[dict[str, np.ndarray], np.ndarray]] | None = None,
    ) -> None:
        """One run's file; ``predicted`` (the run's predicted labels) is stored when given, and each
        extra target's outputs and predicted labels (``extra_targets``: by name) under its name.

        The record carries the study's results key and a checksum of the whole payload
        (``integrity``), so that a foreign or altered file is recognised; a failure record of the
        run, left by earlier attempts, is removed once the file is in place."""
        arrays: dict[str, Any] = {f"output__{k}": np.asarray(outputs[k]) for k in OUTPUT_KINDS}
        extra_fields: dict[str, Any] = {}
        if self.example_units:
            arrays[PACKED_MASK_MEMBER] = pack_mask(spec.mask)
            extra_fields[MASK_LENGTH_FIELD] = int(np.asarray(spec.mask).size)
        else:
            arrays[MASK_MEMBER] = np.asarray(spec.mask)
        if predicted is not None:
            arrays[PREDICTED_MEMBER] = np.asarray(predicted, dtype=np.int16)
        for name, (target_outputs, target_predicted) in (extra_targets or {}).items():
            for k in OUTPUT_KINDS:
                arrays[output_member(k, name)] = np.asarray(target_outputs[k])
            arrays[predicted_member(name)] = np.asarray(target_predicted, dtype=np.int16)
        fields = {"run_id": spec.run_id, "kind": spec.kind, "index": spec.index, "seed": spec.seed, **record,
                  **extra_fields}
        fields[RESULTS_KEY_FIELD] = self.metadata["results_key"]
        arrays["record"] = np.asarray(json.dumps(sealed_record(arrays, fields)))
        atomic_write_npz(self.run_path(spec.run_id), arrays)
        self.failure_path(spec.run_id).unlink(missing_ok=True)

    # ---- failed runs and runs in progress ---------------------------------------------------
    def failure_path(self, run_id: str) -> Path:
        return failure_path(self.path, run_id)

    def failures(self) -> dict[str, dict[str, Any]]:
        """The failure record of every run that failed and has no file since (unreadable records are
        reported as such rather than hidden)."""
        finished = self.finished_run_ids()
        found: dict[str, dict[str, Any]] = {}
        for path in sorted((self.path / RUNS_DIR).glob(f"*{FAILED_SUFFIX}")):
            run_id = path.name[: -len(FAILED_SUFFIX)]
            if run_id.startswith(".") or run_id in finished:
                continue
            try:
                found[run_id] = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                found[run_id] = {"run_id": run_id, "attempts": None, "last_error": f"unreadable failure record: {exc}"}
        return found

    def running(self) -> dict[str, dict[str, Any]]:
        """The markers of runs in progress (``mark_running``), by run id, whether or not their
        process still lives: judging that is the reader's (``pipeline.status``)."""
        found: dict[str, dict[str, Any]] = {}
        for path in sorted((self.path / RUNNING_DIR).glob("*.json")):
            if path.name.startswith("."):
                continue
            try:
                found[path.stem] = json.loads(path.read_text())
            except (OSError, ValueError):
                continue  # a marker being replaced or removed right now
        return found


    def read_run(
        self, run_id: str, target: str | None = None
    ) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, Any]]:
        """A run's mask, outputs and record; ``target``: an extra target's name (None: the primary)."""
        with np.load(self.run_path(run_id), allow_pickle=False) as archive:
            outputs = {k: archive[output_member(k, target)] for k in OUTPUT_KINDS}
            record = json.loads(str(archive["record"]))
            return _archive_mask(archive, record), outputs, record

    def read_run_mask_and_record(self, run_id: str) -> tuple[np.ndarray, dict[str, Any]]:
        """A run's mask (over classes, or unpacked over source examples) and record, without loading
        its outputs."""
        with np.load(self.run_path(run_id), allow_pickle=False) as archive:
            record = json.loads(str(archive["record"]))
            return _archive_mask(archive, record), record

    def read_run_output(self, run_id: str, kind: str, target: str | None = None) -> np.ndarray:
        """One output kind of one run (an npz member is read alone: the others stay on disk);
        ``target``: an extra target's name (None: the primary)."""
        with np.load(self.run_path(run_id), allow_pickle=False) as archive:
            return archive[output_member(kind, target)]

    def read_run_predicted(self, run_id: str, target: str | None = None) -> np.ndarray | None:
        """The predicted label of every target test example of one run; None for a file written
        before predicted labels were recorded."""
        member = predicted_member(target)
        with np.load(self.run_path(run_id), allow_pickle=False) as archive:
            return archive[member] if member in archive.files else None

    def extra_target_name(self, target: str | None) -> str | None:
        """``target`` as the run files name it: None for the study's primary target (its members
        carry no name), the name itself for an extra target. Refuses a name the study lacks."""
        config = self.config
        names = config.target_names
        if target is None or target == names[0]:
            return None
        if target not in names:
            raise InputError(
                f"{self.path} has no target named {target!r}; its targets are {', '.join(names)} "
                f"(the first is the primary, used when no target is named)"
            )
        return target


def _archive_mask(archive: Any, record: dict[str, Any]) -> np.ndarray:
    """The mask member of an open run file, unpacked to bools (only that member is read)."""
    member = PACKED_MASK_MEMBER if PACKED_MASK_MEMBER in archive.files else MASK_MEMBER
    return run_mask({member: archive[member]}, record)


@contextmanager
def study_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on the study directory for as long as runs are being added.

    Readers never take it: they read finished files only, and consolidation has its own lock.
    A directory this lock created is removed again if it still holds nothing but the lock when the
    lock is let go (``run`` refused the config, the data or the plan before writing ``study.json``),
    so a refused study leaves no directory behind to be mistaken for a study.
    """
    created = not path.exists()
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
        if created:
            _remove_if_only_lock(path)
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def _remove_if_only_lock(path: Path) -> None:
    """Remove ``path`` if it holds only the study lock file (done while the lock is still held, so
    no other ``run`` is inside it); anything else in it, or a study file, keeps it."""
    try:
        if [p.name for p in path.iterdir()] != [LOCK_FILE]:
            return
        (path / LOCK_FILE).unlink()
        path.rmdir()
    except OSError:
        return  # something appeared meanwhile, or it cannot be removed: leave it as it is


@contextmanager
def consolidation_lock(path: Path) -> Iterator[None]:
    """An exclusive lock for consolidating, waited for rather than refused.

    Distinct from the study lock, which ``run`` holds for its whole duration: a reader beside a
    running study consolidates between the study's own consolidations, never during one (a
    consolidation can replace the arrays while growing them, so two at once could write rows into a
    file that is no longer the study's and flag them). Opened read-only so that a lock file made by
    another user still serves.
    """
    fd = os.open(path / CONSOLIDATE_LOCK_FILE, os.O_RDONLY | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def failure_path(study_dir: Path, run_id: str) -> Path:
    return Path(study_dir) / RUNS_DIR / f"{run_id}{FAILED_SUFFIX}"


def record_failure(study_dir: Path, run_id: str, errors: list[dict[str, Any]], max_attempts: int) -> Path:
    """Mark ``run_id`` failed after its attempts of one invocation all failed; ``errors``: one entry
    per attempt (``error``, ``traceback``, ``timed_out``, ``when``).

    Earlier invocations' attempts are added up, so the record says how often the run has failed in
    all. The record is written atomically beside the run files: a run is failed exactly while this
    file exists and its ``.npz`` does not (``write_run`` removes it on success)."""
    path = failure_path(study_dir, run_id)
    previous: dict[str, Any] = {}
    if path.is_file():
        try:
            previous = json.loads(path.read_text())
        except (OSError, ValueError):
            previous = {}
    history = (list(previous.get("errors", [])) + errors)[-MAX_RECORDED_ERRORS:]
    last = errors[-1]
    record = {
        "run_id": run_id,
        "attempts": int(previous.get("attempts") or 0) + len(errors),
        "invocations": int(previous.get("invocations") or 0) + 1,
        "max_attempts": max_attempts,
        "last_error": last["error"],
        "timed_out": bool(last.get("timed_out", False)),
        "traceback": last.get("traceback"),
        "when": last.get("when"),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "errors": history,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(record, indent=2))
    return path


def mark_running(study_dir: Path, run_id: str) -> Path:
    """Say that ``run_id`` is in progress here: ``running/<run_id>.json`` with host, pid and start.

    Written by the worker itself, so it serves every executor (a pool, Ray, a SLURM array task, a
    shell loop of ``work``). Renamed into place but not fsynced: a marker lost in a power cut only
    hides a run that is no longer running anyway."""
    folder = Path(study_dir) / RUNNING_DIR
    folder.mkdir(exist_ok=True)
    path = folder / f"{run_id}.json"
    temp = folder / f".{path.name}.{os.getpid()}.{os.urandom(6).hex()}.tmp"
    temp.write_text(json.dumps({"run_id": run_id, "host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}))
    os.replace(temp, path)
    return path


def clear_running(study_dir: Path, run_id: str) -> None:
    """Remove this process's marker of ``run_id`` (a marker another process has since written for
    the same run is left alone)."""
    path = Path(study_dir) / RUNNING_DIR / f"{run_id}.json"
    try:
        marker = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if marker.get("pid") == os.getpid() and marker.get("host") == socket.gethostname():
        path.unlink(missing_ok=True)
