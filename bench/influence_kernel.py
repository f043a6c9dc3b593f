"""Claim: `class_influence` costs about one matrix product of the same shapes (goal ≤ 1.25×).

Times `class_influence(masks, outputs)` (values *and* standard errors) against one
`np.matmul(masksᵀ, outputs)` in float32 at the paper's scale (m=7540 models, K=1000 classes,
n=10000 targets), alternating the two, and reports the median of each, their ratio, and the peak
extra memory each allocates (tracemalloc sees numpy's buffers). With ``--block-size B`` it also
times the block-level standard errors of a balanced design (complement pairs: B = 2; partition at
α = 0.1: B = 10), which cost about B(B+1)/2 products over the blocks, in float64.

    python bench/influence_kernel.py [--models 7540] [--classes 1000] [--targets 10000] [--repeats 5] [--block-size B]
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc

import numpy as np

from _setup import ensure_malloc_tuning
from transfer_influence import class_influence


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _peak_mib(fn) -> float:
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def main() -> None:
    ensure_malloc_tuning()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=7540)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--targets", type=int, default=10000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--block-size", type=int, default=0, help="also time block-level errors with blocks of this size")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    masks = rng.random((args.models, args.classes)) < 0.5
    outputs = rng.random((args.models, args.targets), dtype=np.float32)
    design = masks.T.astype(np.float32)  # the matmul's own operand, prepared outside its timing

    estimate = lambda: class_influence(masks, outputs)  # noqa: E731
    product = lambda: np.matmul(design, outputs)  # noqa: E731
    estimate(), product()  # warm up BLAS threads and page in the inputs
    t_est, t_mm = [], []
    for _ in range(args.repeats):
        t_est.append(_timed(estimate))
        t_mm.append(_timed(product))
    med_est, med_mm = statistics.median(t_est), statistics.median(t_mm)
    peak_est, peak_mm = _peak_mib(estimate), _peak_mib(product)
    result_mib = 2 * args.classes * args.targets * 4 / 2**20
    inputs_mib = (masks.nbytes + outputs.nbytes) / 2**20

    print(f"shapes: m={args.models} K={args.classes} n={args.targets} (float32), inputs {inputs_mib:.0f} MiB")
    print(f"np.matmul(maskᵀ, outputs):         median {med_mm:.3f} s  (runs: {', '.join(f'{t:.3f}' for t in t_mm)})")
    print(f"class_influence (values + stderr): median {med_est:.3f} s  (runs: {', '.join(f'{t:.3f}' for t in t_est)})")
    print(f"ratio class_influence / matmul: {med_est / med_mm:.3f}  (goal ≤ 1.25)")
    print(
        f"peak allocated: class_influence {peak_est:.0f} MiB (of which results {result_mib:.0f} MiB: values + stderr), "
        f"matmul {peak_mm:.0f} MiB (its result)"
    )
    if args.block_size:
        _time_blocks(args, rng, outputs, med_mm)


def _time_blocks(args: argparse.Namespace, rng: np.random.Generator, outputs: np.ndarray, matmul_seconds: float) -> None:
    """Partition-design masks (each block's models take disjoint subsets) and block-level errors."""
    b, k = args.block_size, args.classes
    blocks = np.arange(args.models) // b
    masks = np.zeros((args.models, k), dtype=bool)
    for start in range(0, args.models, b):
        order = rng.permutation(k)
        for slot, row in enumerate(range(start, min(start + b, args.models))):
            masks[row, order[slot * (k // b) : (slot + 1) * (k // b)]] = True
    blocked = lambda: class_influence(masks, outputs, blocks=blocks)  # noqa: E731
    times = [_timed(blocked) for _ in range(max(1, args.repeats // 2))]
    print(f"class_influence with block-level errors (blocks of {b}): median {statistics.median(times):.3f} s "
          f"= {statistics.median(times) / matmul_seconds:.1f}x the matmul; peak {_peak_mib(blocked):.0f} MiB")


if __name__ == "__main__":
    main()
