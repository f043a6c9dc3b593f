"""Reading a study: consolidation of run files into memmaps, and the labelled results object.

No torch import here: analysis and estimation run from a study directory in any Python with numpy.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..errors import InputError, StudyMismatchError
from .atomic import atomic_write_npz, fsync_file, new_temp_file, remove_temp_files, replace_durably
from .config import StudyConfig
from .integrity import SUBSET_RUN_ID, FileIdentity, RunFileCheck, pack_mask, quarantine_run_file, run_mask
from .store import CONSOLIDATED_DIR, EXTRA_ACCURACY_FIELD, RUNS_DIR, StudyStore, consolidation_lock, output_member
from .outputs import OUTPUT_KINDS


def load_target_views(store: StudyStore, target: str | None = None) -> dict[str, np.ndarray]:
    """Target test labels, ids and class names and the source class names (and, in an example-level
    study, the source example ids, its units), from the study's data views: what reading a study
    needs without any finished run. ``target``: a target's name (None
    or the primary's name: the primary target; an unknown name is refused)."""
    prefix = "target_test" if (extra := store.extra_target_name(target)) is None else f"target_test__{extra}"
    with np.load(store.data_path, allow_pickle=False) as archive:
        views = {
            "labels": archive[f"{prefix}__labels"].astype(np.int64),
            "ids": archive[f"{prefix}__ids"].astype(str),
            "classes": archive[f"{prefix}__classes"].astype(str),
            "source_classes": archive["source_train__classes"].astype(str),
        }
        if store.example_units:
            views["source_ids"] = archive["source_train__ids"].astype(str)
        return views


def _extra_target_sizes(store: StudyStore) -> dict[str, int]:
    """Test examples of each extra target, by name (empty for a one-target study)."""
    names = [t.name for t in store.config.extra_targets]
    if not names:
        return {}
    with np.load(store.data_path, allow_pickle=False) as archive:
        return {name: int(archive[f"target_test__{name}__labels"].size) for name in names}


def _suffix(target: str | None) -> str:
    """Consolidated-array name suffix of a target: none for the primary, ``__<name>`` for an extra one."""
    return "" if target is None else f"__{target}"


FLAGS_FILE = "completed.npz"
"""``completed``: one flag per row; ``identity``: per row, the (inode, size, mtime, ctime) of the run
file the row was read from, so that ``audit_runs`` re-reads only files replaced since (absent from
files written before it was recorded: those rows' files are read once more, then recorded)."""
GROWTH = 1.5
"""Factor by which the consolidated arrays grow past the rows needed when more runs finish: sizing
them to the finished runs (never to ``num_models``, which may be a pilot's 100,000) keeps files to
what is held, and geometric growth keeps the copying on growth linear overall."""
LEGACY_TEMP_SUFFIX = ".grow.npy"
"""The fixed temporary name older versions grew arrays under (cleaned like the unique ones)."""


PACKED_MASKS = "masks_packed"
"""Consolidated masks of an example-level study: one row of ``ceil(L/8)`` bytes per run
(``np.packbits`` of its mask over the L source examples), never an m × L array of bools."""


def _array_layout(
    num_units: int, num_targets: int, extra_targets: dict[str, int] | None = None, packed: bool = False
) -> dict[str, tuple[tuple[int, ...], Any]]:
    """Each consolidated array's row shape and dtype: one row per subset run index. An extra target
    (``extra_targets``: its number of test examples by name) adds ``target_accuracy__<name>`` and
    ``outputs_<kind>__<name>``; the primary's arrays keep the names of a one-target study.
    ``packed``: the masks are over source examples and stored bit-packed (``masks_packed``)."""
    mask_layout = {PACKED_MASKS: (((num_units + 7) // 8,), np.uint8)} if packed else {"masks": ((num_units,), np.bool_)}
    layout: dict[str, tuple[tuple[int, ...], Any]] = {
        **mask_layout,
        "source_accuracy": ((), np.float32),
        "target_accuracy": ((), np.float32),
        **{f"outputs_{k}": ((num_targets,), np.float32) for k in OUTPUT_KINDS},
    }
    for name, size in (extra_targets or {}).items():
        layout[f"target_accuracy{_suffix(name)}"] = ((), np.float32)
        layout.update({f"outputs_{k}{_suffix(name)}": ((size,), np.float32) for k in OUTPUT_KINDS})
    return layout


def _study_layout(store: StudyStore) -> dict[str, tuple[tuple[int, ...], Any]]:
    targets = load_target_views(store)
    packed = store.example_units
    units = len(targets["source_ids"] if packed else targets["source_classes"])
    return _array_layout(units, len(targets["labels"]), _extra_target_sizes(store), packed)


def grown_capacity(capacity: int, needed: int, planned: int) -> int:
    """Rows the consolidated arrays should have: ``capacity`` while it holds ``needed`` rows, else
    ``GROWTH`` × as many (at least ``needed``), but never past the planned ``num_models`` while the
    finished runs fit in it, so a finished study's arrays hold exactly its runs."""
    if needed <= capacity:
        return capacity
    grown = max(needed, math.ceil(capacity * GROWTH))
    return min(grown, planned) if needed <= planned else grown


def consolidate(store: StudyStore, stream: IO[str] | None = None) -> Path:
    """Fold finished subset-run files into ``consolidated/`` memmaps; returns that directory.

    Takes the consolidation lock, so the running study and any readers consolidate one at a time.
    Only runs not consolidated yet are read, each checked whole first (``StudyStore.check_run``): a
    bad file is moved to ``runs/quarantine/`` with a message on ``stream`` (stderr by default) and
    never enters the arrays. Rows are filled and flushed before the completion flags are replaced
    (atomically), so a crash during consolidation leaves flags that only mark rows already written.
    """
    out = store.path / CONSOLIDATED_DIR
    with consolidation_lock(store.path):
        out.mkdir(exist_ok=True)
        _remove_leftovers(out)
        _consolidate_locked(store, out, stream or sys.stderr)
    return out


def audit_runs(store: StudyStore, stream: IO[str] | None = None) -> list[RunFileCheck]:
    """Check every run file not known good, move the bad ones aside, and return their checks.

    Called by ``run`` under the study lock before it decides what is left to do, so that a bad file
    counts as missing and is run again. A consolidated run whose file still has the identity it had
    when its row was written is known good and not read again; any other file (new, replaced,
    baselines) is read whole. A consolidated row whose file is bad or gone loses its flag, so the
    re-run's file is consolidated afresh.
    """
    stream = stream or sys.stderr
    out = store.path / CONSOLIDATED_DIR
    config = store.config
    bad: list[RunFileCheck] = []
    with consolidation_lock(store.path):
        flags, identities = _load_flags(out), _load_identities(out)
        known_good: set[int] = set()
        for path in sorted((store.path / RUNS_DIR).glob("*.npz")):
            if path.name.startswith("."):
                continue
            match = SUBSET_RUN_ID.match(path.stem)
            row = int(match.group(1)) if match else -1
            if 0 <= row < flags.size and flags[row] and _same_identity(path, identities, row):
                known_good.add(row)
                continue
            check = store.check_run(path.stem, config)
            if not check.ok:
                bad.append(check)
                quarantine_run_file(check, stream)
        stale = [row for row in np.flatnonzero(flags) if int(row) not in known_good]
        if stale:
            flags[stale] = False
            atomic_write_npz(out / FLAGS_FILE, {"completed": flags, "identity": _fit_identities(identities, flags.size)})
    return bad


def _same_identity(path: Path, identities: np.ndarray, row: int) -> bool:
    if row >= identities.shape[0]:
        return False
    try:
        return FileIdentity.of(os.stat(path)).as_row() == tuple(int(v) for v in identities[row])
    except FileNotFoundError:
        return False


def _remove_leftovers(out: Path) -> None:
    """Temp files of consolidations that were killed: only consolidations write here, under the lock."""
    remove_temp_files(out)
    for legacy in out.glob(f"*{LEGACY_TEMP_SUFFIX}"):
        legacy.unlink()


def _consolidate_locked(store: StudyStore, out: Path, stream: IO[str]) -> None:
    layout = _study_layout(store)
    finished = store.finished_subset_indices()
    needed = finished[-1] + 1 if finished else 0
    config = store.config
    rows = grown_capacity(_capacity(out, layout), needed, config.num_models)
    completed = _fit(_load_flags(out), rows)
    identities = _fit_identities(_load_identities(out), rows)
    todo = [i for i in finished if not completed[i]]
    if not todo:
        return
    arrays = _open_arrays(out, rows, layout)
    written: list[int] = []
    for index in todo:
        check = store.check_run(f"subset-{index:06d}", config)
        if not check.ok:
            quarantine_run_file(check, stream)
            continue
        mask = run_mask(check.arrays, check.record)
        if PACKED_MASKS in arrays:
            arrays[PACKED_MASKS][index] = pack_mask(mask)
        else:
            arrays["masks"][index] = mask
        for kind in OUTPUT_KINDS:
            arrays[f"outputs_{kind}"][index] = check.arrays[f"output__{kind}"]
        arrays["source_accuracy"][index] = check.record["source_accuracy"]
        arrays["target_accuracy"][index] = check.record["target_accuracy"]
        for extra in config.extra_targets:
            for kind in OUTPUT_KINDS:
                arrays[f"outputs_{kind}{_suffix(extra.name)}"][index] = check.arrays[output_member(kind, extra.name)]
            arrays[f"target_accuracy{_suffix(extra.name)}"][index] = check.record[EXTRA_ACCURACY_FIELD][extra.name]
        assert check.identity is not None, "a file that was read has an identity"
        identities[index] = check.identity.as_row()
        written.append(index)
    for array in arrays.values():
        array.flush()
    if written:
        completed[written] = True
        atomic_write_npz(out / FLAGS_FILE, {"completed": completed, "identity": identities})


def _load_flags(out: Path) -> np.ndarray:
    """The completion flags as stored (any length; none when nothing was consolidated yet)."""
    path = out / FLAGS_FILE
    if not path.exists():
        return np.zeros(0, dtype=bool)
    with np.load(path) as archive:
        return archive["completed"].astype(bool)


def _load_identities(out: Path) -> np.ndarray:
    """Per consolidated row, its file's identity (``FileIdentity.as_row``); zeros where unknown."""
    path = out / FLAGS_FILE
    if not path.exists():
        return np.zeros((0, 4), dtype=np.int64)
    with np.load(path) as archive:
        if "identity" in archive.files:
            return archive["identity"].astype(np.int64)
        return np.zeros((archive["completed"].size, 4), dtype=np.int64)


def _fit_identities(identities: np.ndarray, rows: int) -> np.ndarray:
    fitted = np.zeros((rows, 4), dtype=np.int64)
    keep = min(rows, identities.shape[0])
    fitted[:keep] = identities[:keep]
    return fitted


def _fit(flags: np.ndarray, rows: int) -> np.ndarray:
    fitted = np.zeros(rows, dtype=bool)
    keep = min(rows, flags.size)
    fitted[:keep] = flags[:keep]
    return fitted


def _capacity(out: Path, layout: dict[str, tuple[tuple[int, ...], Any]]) -> int:
    """Rows of the largest consolidated array (0 if none); refuses arrays of the wrong row shape."""
    capacity = 0
    for name, (row_shape, _) in layout.items():
        path = out / f"{name}.npy"
        if not path.exists():
            continue
        shape = np.load(path, mmap_mode="r").shape
        if shape[1:] != row_shape:
            raise StudyMismatchError(
                f"{path} holds rows of shape {shape[1:]}, the study's data need {row_shape}; delete {out} "
                "and it is rebuilt from the run files"
            )
        capacity = max(capacity, shape[0])
    return capacity


def _open_arrays(out: Path, rows: int, layout: dict[str, tuple[tuple[int, ...], Any]]) -> dict[str, np.memmap]:
    """Open the consolidated arrays for writing, each brought to ``rows`` rows first."""
    arrays: dict[str, np.memmap] = {}
    for name, (row_shape, dtype) in layout.items():
        path = out / f"{name}.npy"
        if not path.exists() or np.load(path, mmap_mode="r").shape[0] != rows:
            _write_resized(path, (rows, *row_shape), dtype)
        arrays[name] = np.load(path, mmap_mode="r+")
    return arrays


def _write_resized(path: Path, shape: tuple[int, ...], dtype: Any) -> None:
    """Write a new array file of ``shape`` holding the old file's rows, then swap it in durably.

    The copy is made under a unique temporary name and renamed over the old file, so a reader
    holding the old file's map keeps valid rows and a crash leaves the old file whole.
    """
    temp = new_temp_file(path)
    try:
        grown = np.lib.format.open_memmap(temp, "w+", dtype, shape)
        if path.exists():
            existing = np.load(path, mmap_mode="r")
            keep = min(shape[0], existing.shape[0])
            grown[:keep] = existing[:keep]
            del existing
        grown.flush()
        del grown
        fsync_file(temp)
        replace_durably(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


@dataclass
class StudyResults:
    """The finished runs of a study, labelled: which units each model saw and what it output.

    ``class_names`` names the mask's columns, the study's units: the source classes, or in an
    example-level study (``unit_kind`` 'example') the source example ids, with the classes in
    ``source_class_names``. ``masks`` is a dense m × L bool array even then (L bytes per model,
    read from bit-packed rows): fine at demo scale, the estimators take it as it is.
    """

    path: Path
    config: StudyConfig
    metadata: dict[str, Any]
    run_indices: np.ndarray
    masks: np.ndarray
    class_names: tuple[str, ...]
    target_labels: np.ndarray
    target_ids: np.ndarray
    target_class_names: tuple[str, ...]
    source_accuracy: np.ndarray
    target_accuracy: np.ndarray
    _consolidated: Path
    _from_run_files: np.ndarray
    """Per model: True where its outputs are read from its run file (not consolidated yet)."""

    output_kinds: tuple[str, ...] = OUTPUT_KINDS
    target_name: str = ""
    """The target whose labels, ids, accuracies and outputs these are (``for_target`` picks another)."""
    target_names: tuple[str, ...] = ()
    """Every target of the study, the primary first."""
    _extra_target: str | None = None
    """The target's name in run files and consolidated arrays: None for the primary (unnamed there)."""
    unit_kind: str = "class"
    """What a mask column is: a source ``class`` or a source ``example`` (``design.unit``)."""
    source_class_names: tuple[str, ...] = ()
    """The source classes (equal to ``class_names`` in a class-level study)."""

    @property
    def unit_names(self) -> tuple[str, ...]:
        """The name of each mask column: class names, or source example ids."""
        return self.class_names

    def for_target(self, name: str | None) -> "StudyResults":
        """The same runs seen on another of the study's targets (None: the primary); every analysis
        works on the result unchanged. An unknown name is refused with the study's target names."""
        store = StudyStore.open(self.path)
        if store.extra_target_name(name) == self._extra_target:
            return self
        return _read_results(store, name)

    @property
    def num_models(self) -> int:
        return int(self.run_indices.size)

    @property
    def blocks(self) -> np.ndarray | None:
        """Design block of each finished model, where the design or the seeding is blocked
        (partition/complement designs, ``train.seeding: block``); None for independent models."""
        from .design import design_block_size, is_blocked

        if not is_blocked(self.config):
            return None
        return self.run_indices // design_block_size(self.config)

    def outputs(self, kind: str = "p_true") -> np.ndarray:
        """(models × target examples) outputs of the given kind, rows in ``run_indices`` order."""
        if kind not in self.output_kinds:
            raise InputError(f"unknown output kind {kind!r}; choose one of {list(self.output_kinds)}")
        loose = np.flatnonzero(self._from_run_files)
        if loose.size == 0 and self.num_models:
            full = np.load(self._consolidated / f"outputs_{kind}{_suffix(self._extra_target)}.npy", mmap_mode="r")
            if self.run_indices[-1] == self.run_indices.size - 1:
                return full[: self.run_indices.size]
            return np.asarray(full[self.run_indices])
        result = np.zeros((self.num_models, self.target_labels.size), dtype=np.float32)
        stored = np.flatnonzero(~self._from_run_files)
        if stored.size:
            full = np.load(self._consolidated / f"outputs_{kind}{_suffix(self._extra_target)}.npy", mmap_mode="r")
            result[stored] = full[self.run_indices[stored]]
        store = StudyStore.open(self.path)
        for position in loose:
            run_id = f"subset-{self.run_indices[position]:06d}"
            result[position] = store.read_run_output(run_id, kind, self._extra_target)
        return result

    @cached_property
    def baselines(self) -> dict[str, np.ndarray]:
        """Target accuracy of the baseline runs: ``all_source`` and ``random_init`` backbones (a bad
        file is left out with a message; the study's next ``run`` moves it aside and reruns it)."""
        store = StudyStore.open(self.path)
        found: dict[str, list[float]] = {"all_source": [], "random_init": []}
        for run_id in sorted(store.finished_run_ids()):
            kind = run_id.rsplit("-", 1)[0]
            if kind in found:
                check = store.check_run(run_id)
                if not check.ok:
                    print(f"  ignoring {check.path.name}: {check.problem}", file=sys.stderr)
                    continue
                found[kind].append(_target_accuracy(check.record, self._extra_target))
        return {k: np.asarray(v) for k, v in found.items()}


def _target_accuracy(record: dict[str, Any], target: str | None) -> float:
    """A run record's accuracy on the primary target (None) or on the extra target named ``target``."""
    return float(record["target_accuracy"] if target is None else record[EXTRA_ACCURACY_FIELD][target])


def open_study(path: str | Path, read_only: bool | None = None, target: str | None = None) -> StudyResults:
    """The finished runs of the study at ``path``, seen on its target named ``target`` (None: the
    primary target; an unknown name is refused before anything is read).

    A study this process may write is consolidated first, under the consolidation lock and never
    the study lock, so reading works beside a running study. ``read_only`` (the default where the
    directory is not writable, e.g. a shared results folder someone else owns) creates and changes
    no file: the consolidated rows flagged complete are read as they are, and finished runs not yet
    consolidated are read from their run files.
    """
    path = Path(path)
    store = StudyStore.open(path)
    store.extra_target_name(target)
    if read_only is None:
        read_only = not _writable(path)
    if not read_only:
        consolidate(store)
    return _read_results(store, target)


def _writable(path: Path) -> bool:
    """Whether this process may consolidate here: the study folder, ``consolidated/`` and its files."""
    folder = path / CONSOLIDATED_DIR
    paths = [path, *([folder, *folder.iterdir()] if folder.is_dir() else [])]
    return all(os.access(p, os.W_OK) for p in paths)


def _read_results(store: StudyStore, target: str | None = None) -> StudyResults:
    """Rows flagged complete from the consolidated arrays, other finished runs from their files.

    The flags are read before the arrays: a concurrent consolidation only writes unflagged rows and
    grows arrays by copying, so every row the flags mark is in the arrays read after them.
    """
    out = store.path / CONSOLIDATED_DIR
    extra = store.extra_target_name(target)
    targets = load_target_views(store, extra)
    layout = _study_layout(store)
    flags = _load_flags(out)
    stored = _consolidated_arrays(out, layout)
    rows = min((a.shape[0] for a in stored.values()), default=0)
    consolidated = np.flatnonzero(flags[:rows])
    loose = np.setdiff1d(np.asarray(store.finished_subset_indices(), dtype=np.int64), consolidated)
    run_indices = np.union1d(consolidated, loose).astype(np.int64)
    from_files = np.isin(run_indices, loose)
    example_units = store.example_units
    unit_names = targets["source_ids"] if example_units else targets["source_classes"]
    masks = np.zeros((run_indices.size, len(unit_names)), dtype=bool)
    accuracy = {name: np.zeros(run_indices.size, dtype=np.float32) for name in ("source_accuracy", "target_accuracy")}
    in_arrays = ~from_files
    if in_arrays.any():
        masks[in_arrays] = _stored_masks(stored, run_indices[in_arrays], len(unit_names))
        accuracy["source_accuracy"][in_arrays] = stored["source_accuracy"][run_indices[in_arrays]]
        accuracy["target_accuracy"][in_arrays] = stored[f"target_accuracy{_suffix(extra)}"][run_indices[in_arrays]]
    config = store.config
    usable = np.ones(run_indices.size, dtype=bool)
    for position in np.flatnonzero(from_files):
        check = store.check_run(f"subset-{run_indices[position]:06d}", config)
        if not check.ok:  # left in place by a read-only reader; the study's next `run` moves it aside
            print(f"  ignoring {check.path.name}: {check.problem}", file=sys.stderr)
            usable[position] = False
            continue
        masks[position] = run_mask(check.arrays, check.record)
        accuracy["source_accuracy"][position] = check.record["source_accuracy"]
        accuracy["target_accuracy"][position] = _target_accuracy(check.record, extra)
    if not usable.all():
        run_indices, from_files, masks = run_indices[usable], from_files[usable], masks[usable]
        accuracy = {name: values[usable] for name, values in accuracy.items()}
    return StudyResults(
        path=store.path,
        config=config,
        metadata=store.metadata,
        run_indices=run_indices,
        masks=masks,
        class_names=tuple(unit_names.tolist()),
        target_labels=targets["labels"],
        target_ids=targets["ids"],
        target_class_names=tuple(targets["classes"].tolist()),
        source_accuracy=accuracy["source_accuracy"],
        target_accuracy=accuracy["target_accuracy"],
        _consolidated=out,
        _from_run_files=from_files,
        target_name=config.target_names[0] if extra is None else extra,
        target_names=tuple(config.target_names),
        _extra_target=extra,
        unit_kind="example" if example_units else "class",
        source_class_names=tuple(targets["source_classes"].tolist()),
    )


def _stored_masks(stored: dict[str, np.memmap], rows: np.ndarray, num_units: int) -> np.ndarray:
    """The masks of consolidated ``rows`` as bools, unpacked where they are stored as bits."""
    if PACKED_MASKS in stored:
        return np.unpackbits(np.asarray(stored[PACKED_MASKS][rows]), axis=1, count=num_units).astype(bool)
    return np.asarray(stored["masks"][rows])


def _consolidated_arrays(out: Path, layout: dict[str, tuple[tuple[int, ...], Any]]) -> dict[str, np.memmap]:
    """The consolidated arrays, opened read-only; none unless every one exists."""
    paths = {name: out / f"{name}.npy" for name in layout}
    if not all(p.exists() for p in paths.values()):
        return {}
    return {name: np.load(p, mmap_mode="r") for name, p in paths.items()}
