"""Reading a study: consolidation of run files into memmaps, and the labelled results object.

No torch import here: analysis and estimation run from a study directory in any Python with numpy.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .config import StudyConfig
from .store import CONSOLIDATED_DIR, StudyStore, atomic_write_npz
from .outputs import OUTPUT_KINDS


def _load_targets(store: StudyStore) -> dict[str, np.ndarray]:
    with np.load(store.data_path, allow_pickle=False) as archive:
        return {
            "labels": archive["target_test__labels"].astype(np.int64),
            "ids": archive["target_test__ids"].astype(str),
            "classes": archive["target_test__classes"].astype(str),
            "source_classes": archive["source_train__classes"].astype(str),
        }


def consolidate(store: StudyStore) -> Path:
    """Fold finished subset-run files into ``consolidated/`` memmaps; returns that directory.

    Rows are filled before the completion flags are replaced (atomically), so a crash during
    consolidation leaves flags that only mark rows already written.
    """
    out = store.path / CONSOLIDATED_DIR
    out.mkdir(exist_ok=True)
    targets = _load_targets(store)
    num_classes, num_targets = len(targets["source_classes"]), len(targets["labels"])
    finished = sorted(
        int(r.split("-")[1]) for r in store.finished_run_ids() if r.startswith("subset-")
    )
    rows = max([store.config.num_models] + [i + 1 for i in finished])
    completed = _load_flags(out, rows)
    arrays = _open_arrays(out, rows, num_classes, num_targets)
    todo = [i for i in finished if not completed[i]]
    for index in todo:
        mask, outputs, record = store.read_run(f"subset-{index:06d}")
        arrays["masks"][index] = mask
        for kind in OUTPUT_KINDS:
            arrays[f"outputs_{kind}"][index] = outputs[kind]
        arrays["source_accuracy"][index] = record["source_accuracy"]
        arrays["target_accuracy"][index] = record["target_accuracy"]
    if todo:
        for array in arrays.values():
            array.flush()
        completed[todo] = True
        atomic_write_npz(out / "completed.npz", {"completed": completed})
    return out


def _load_flags(out: Path, rows: int) -> np.ndarray:
    path = out / "completed.npz"
    flags = np.zeros(rows, dtype=bool)
    if path.exists():
        with np.load(path) as archive:
            old = archive["completed"]
        flags[: min(rows, old.size)] = old[:rows]
    return flags


def _open_arrays(out: Path, rows: int, num_classes: int, num_targets: int) -> dict[str, np.memmap]:
    """Open (or grow) the consolidated arrays; growing copies the old rows into a larger file."""
    shapes: dict[str, tuple[tuple[int, ...], Any]] = {
        "masks": ((rows, num_classes), np.bool_),
        "source_accuracy": ((rows,), np.float32),
        "target_accuracy": ((rows,), np.float32),
        **{f"outputs_{k}": ((rows, num_targets), np.float32) for k in OUTPUT_KINDS},
    }
    arrays: dict[str, np.memmap] = {}
    for name, (shape, dtype) in shapes.items():
        path = out / f"{name}.npy"
        if path.exists():
            existing = np.load(path, mmap_mode="r+")
            if existing.shape == shape:
                arrays[name] = existing
                continue
            grown = np.lib.format.open_memmap(path.with_suffix(".grow.npy"), "w+", dtype, shape)
            keep = min(shape[0], existing.shape[0])
            grown[:keep] = existing[:keep]
            grown.flush()
            del existing
            path.with_suffix(".grow.npy").replace(path)
            arrays[name] = np.load(path, mmap_mode="r+")
        else:
            arrays[name] = np.lib.format.open_memmap(path, "w+", dtype, shape)
    return arrays


@dataclass
class StudyResults:
    """The finished runs of a study, labelled: which classes each model saw and what it output."""

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

    output_kinds: tuple[str, ...] = OUTPUT_KINDS

    @property
    def num_models(self) -> int:
        return int(self.run_indices.size)

    @property
    def blocks(self) -> np.ndarray | None:
        """Design block of each finished model, where the design or the seeding is blocked
        (partition/complement designs, ``train.seeding: block``); None for independent models."""
        from .design import design_block_size

        config = self.config
        if config.design.kind == "iid" and config.train.seeding != "block":
            return None
        return self.run_indices // design_block_size(config)

    def outputs(self, kind: str = "p_true") -> np.ndarray:
        """(models × target examples) outputs of the given kind, rows in ``run_indices`` order."""
        if kind not in self.output_kinds:
            raise InputError(f"unknown output kind {kind!r}; choose one of {list(self.output_kinds)}")
        full = np.load(self._consolidated / f"outputs_{kind}.npy", mmap_mode="r")
        if self.run_indices.size and self.run_indices[-1] == self.run_indices.size - 1:
            return full[: self.run_indices.size]
        return np.asarray(full[self.run_indices])

    @cached_property
    def baselines(self) -> dict[str, np.ndarray]:
        """Target accuracy of the baseline runs: ``all_source`` and ``random_init`` backbones."""
        store = StudyStore.open(self.path)
        found: dict[str, list[float]] = {"all_source": [], "random_init": []}
        for run_id in sorted(store.finished_run_ids()):
            kind = run_id.rsplit("-", 1)[0]
            if kind in found:
                found[kind].append(store.read_run(run_id)[2]["target_accuracy"])
        return {k: np.asarray(v) for k, v in found.items()}


def open_study(path: str | Path) -> StudyResults:
    """The finished runs of the study at ``path`` (consolidating any new run files first)."""
    store = StudyStore.open(path)
    out = consolidate(store)
    masks = np.load(out / "masks.npy", mmap_mode="r")
    run_indices = np.flatnonzero(_load_flags(out, masks.shape[0]))
    targets = _load_targets(store)
    src = np.load(out / "source_accuracy.npy", mmap_mode="r")
    tgt = np.load(out / "target_accuracy.npy", mmap_mode="r")
    return StudyResults(
        path=Path(path),
        config=store.config,
        metadata=store.metadata,
        run_indices=run_indices,
        masks=np.asarray(masks[run_indices]),
        class_names=tuple(targets["source_classes"].tolist()),
        target_labels=targets["labels"],
        target_ids=targets["ids"],
        target_class_names=tuple(targets["classes"].tolist()),
        source_accuracy=np.asarray(src[run_indices]),
        target_accuracy=np.asarray(tgt[run_indices]),
        _consolidated=out,
    )

