"""Where a demo model's time goes, and what the head's one-BLAS-thread rule saves.

Runs the demo's subset models (α = 0.1, 7 source classes each) in the demo's layout: 2 spawned
processes × 1 torch thread, so the other core is always busy, as it is in a study. Two variants run
the same specs in alternating blocks (A B, B A, …; both processes on one variant at a time, so
neither slows the other's measurement): the project's worker, and the same worker with the
transfer head's BLAS calls left at the library's default thread count (as it ran before).
Prints, per variant, the mean time per model split into source training, holdout accuracy,
feature extraction, head fit and output computation; models per minute of the two processes
(first model started to last finished, per block); the ratio of the two per round; and the largest
difference between the variants' outputs.

    python bench/worker_breakdown.py [--models 40] [--rounds 2]
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any, Callable

import numpy as np

from _setup import ensure_malloc_tuning
from transfer_influence.study.config import StudyConfig, load_config, packaged_config
from transfer_influence.study.design import RunSpec, subset_runs
from transfer_influence.study.views import build_study_data, load_study_data, save_study_data

PARTS = ("train", "holdout accuracy", "features", "head fit", "outputs")
VARIANTS = ("one BLAS thread (project)", "BLAS default threads")
_state: dict[str, Any] = {}


def _timed_part(owner: Any, name: str, part: str) -> None:
    """Replace ``owner.name`` by a wrapper that adds its run time to the current part totals."""
    inner: Callable[..., Any] = getattr(owner, name)

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            _state["parts"][part] += time.perf_counter() - start

    setattr(owner, name, timed)


def _init(data_path: str, config_json: str) -> None:
    import torch

    from transfer_influence.train import transfer, worker

    torch.set_num_threads(1)
    for name, part in [("train_classifier", "train"), ("accuracy", "holdout accuracy"),
                       ("extract_features", "features"), ("output_kinds_from_logits", "outputs")]:
        _timed_part(worker, name, part)
    _timed_part(worker.LinearHead, "fit", "head fit")
    _state["transfer"] = transfer
    _state["one_blas_thread"] = transfer._one_blas_thread
    _state["worker"] = worker.Worker(StudyConfig.model_validate_json(config_json), load_study_data(Path(data_path)))


def _run_variant(spec: RunSpec, variant: str) -> tuple[float, dict[str, float], np.ndarray]:
    """Run one spec as ``variant``: the head's BLAS thread rule on, or replaced by a no-op."""
    transfer = _state["transfer"]
    transfer._one_blas_thread = _state["one_blas_thread"] if variant == VARIANTS[0] else contextlib.nullcontext
    _state["parts"] = defaultdict(float)
    start = time.perf_counter()
    result = _state["worker"].run(spec)
    return time.perf_counter() - start, dict(_state["parts"]), result.outputs["p_true"]


def _run_one(job: tuple[RunSpec, str]) -> tuple[float, float, dict[str, float], np.ndarray]:
    start = time.time()
    _, parts, p_true = _run_variant(*job)
    return start, time.time(), parts, p_true


def measure(data_path: Path, config: StudyConfig, specs: list[RunSpec], rounds: int) -> list[dict[str, Any]]:
    """One record per (round, variant) block: wall time, per-model parts, outputs."""
    blocks: list[dict[str, Any]] = []
    with ProcessPoolExecutor(2, mp_context=get_context("spawn"), initializer=_init,
                             initargs=(str(data_path), config.model_dump_json())) as pool:
        list(pool.map(_run_one, [(spec, v) for spec in specs[:2] for v in VARIANTS]))  # warm-up
        for r in range(rounds):
            for variant in VARIANTS if r % 2 == 0 else VARIANTS[::-1]:
                runs = list(pool.map(_run_one, [(spec, variant) for spec in specs]))
                wall = max(run[1] for run in runs) - min(run[0] for run in runs)
                blocks.append({"round": r, "variant": variant, "wall": wall,
                               "seconds": [run[1] - run[0] for run in runs],
                               "parts": [run[2] for run in runs],
                               "p_true": np.stack([run[3] for run in runs])})
    return blocks


def report(blocks: list[dict[str, Any]], config: StudyConfig, num_specs: int) -> None:
    print(f"demo models (α={config.design.alpha}), {num_specs} specs × {len(blocks) // 2} rounds per variant, "
          f"2 processes × 1 torch thread; per model, ms:")
    header = ("train", "holdout", "features", "head fit", "outputs", "other", "total", "models/min")
    print(f"{'':28s}" + "".join(f"{h:>11s}" for h in header))
    rate: dict[str, list[float]] = defaultdict(list)
    for variant in VARIANTS:
        mine = [b for b in blocks if b["variant"] == variant]
        seconds = np.concatenate([b["seconds"] for b in mine])
        parts = [np.mean([run.get(p, 0.0) for b in mine for run in b["parts"]]) for p in PARTS]
        rate[variant] = [num_specs / b["wall"] * 60 for b in sorted(mine, key=lambda b: b["round"])]
        cells = [*parts, seconds.mean() - sum(parts), seconds.mean()]
        print(f"{variant:28s}" + "".join(f"{1e3 * c:11.1f}" for c in cells) + f"{np.median(rate[variant]):11.1f}")
    ratios = np.array(rate[VARIANTS[0]]) / np.array(rate[VARIANTS[1]])
    print("models/min, project / BLAS default, per round: " + ", ".join(f"{r:.2f}×" for r in ratios)
          + f"  (median {np.median(ratios):.2f}×)")
    by_variant = {v: [b["p_true"] for b in blocks if b["variant"] == v] for v in VARIANTS}
    diff = max(float(np.abs(a - b).max()) for a, b in zip(*by_variant.values()))
    print(f"largest |Δ p_true| between the variants: {diff:.1e}")


def main() -> None:
    ensure_malloc_tuning()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    config = load_config(packaged_config("demo"))
    data = build_study_data(config)
    specs = subset_runs(config, len(data.class_names), range(args.models))
    with TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.npz"
        save_study_data(data, path)
        blocks = measure(path, config, specs, args.rounds)
    report(blocks, config, len(specs))


if __name__ == "__main__":
    main()
