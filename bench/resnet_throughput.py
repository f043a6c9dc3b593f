"""ResNet-18 training images/second per CPU core: the project's source-training loop beside a plain
PyTorch loop on the same model, measured side by side (interleaved) in one run.

* ``project``: ``train.source.train_classifier`` as the paper's recipe runs it (SGD, momentum 0.9,
  weight decay 5e-4, triangular rate), images held as one normalised tensor and indexed per batch,
  channels-last tensors and weights, RandomResizedCrop + flip on the device (``crop_flip``);
* ``project, no augmentation``: the same without ``crop_flip`` (what the augmentation costs);
* ``plain``: the same model, optimiser and rate, trained the way a plain PyTorch script does it:
  ``DataLoader(TensorDataset(...), shuffle=True)`` over NCHW tensors, no augmentation.

One process, one torch thread (one core). Prints images/second of each and their ratios.

    python bench/resnet_throughput.py [--sizes 32 64] [--images 256 96] [--repeats 2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from _setup import ensure_malloc_tuning


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--images", type=int, nargs="+", default=[256, 96], help="training images per timing, per size")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    ensure_malloc_tuning()
    import torch

    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 thread; ResNet-18, CIFAR stem, batch {args.batch_size}")
    for size, n in zip(args.sizes, args.images):
        rates: dict[str, list[float]] = {"project": [], "project, no augmentation": [], "plain": []}
        for _ in range(args.repeats):
            for variant in rates:
                rates[variant].append(_images_per_second(variant, size, n, args.batch_size))
        best = {k: max(v) for k, v in rates.items()}
        print(f"\n{size}×{size} px, {n} images per timing, best of {args.repeats}:")
        for variant, rate in best.items():
            print(f"  {variant:26s} {rate:7.1f} images/s per core  ({', '.join(f'{r:.1f}' for r in rates[variant])})")
        print(f"  ratio project / plain:                 {best['project'] / best['plain']:.2f}")
        print(f"  ratio project no-aug / plain:          {best['project, no augmentation'] / best['plain']:.2f}")


def _images_per_second(variant: str, size: int, n: int, batch_size: int) -> float:
    import torch
    import torch.nn.functional as F

    from transfer_influence.train.models import build_model
    from transfer_influence.train.source import TensorBatches, TrainSettings, to_float_images, train_classifier

    rng = np.random.default_rng(0)
    images_u8 = rng.integers(0, 256, (n, 3, size, size), dtype=np.uint8)
    labels = torch.from_numpy(rng.integers(0, 10, n))
    torch.manual_seed(0)
    model = build_model("resnet18", 10, 3, size, (1, 1, 1), 2, stem="cifar")
    settings = TrainSettings(
        1, batch_size, 0.5, 5e-4, optimizer="sgd", lr_schedule="triangular", lr_peak_epoch=0.2,
        augment="none" if variant != "project" else "crop_flip",
    )
    if variant.startswith("project"):
        model = model.to(memory_format=torch.channels_last)
        x = to_float_images(images_u8).contiguous(memory_format=torch.channels_last)
        _warm_up(model, x[:batch_size], labels[:batch_size])
        start = time.perf_counter()
        train_classifier(model, TensorBatches(x, labels), None, settings, torch.Generator().manual_seed(1))
        return n / (time.perf_counter() - start)
    x = to_float_images(images_u8)
    _warm_up(model, x[:batch_size], labels[:batch_size])
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, labels), batch_size=batch_size, shuffle=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9, weight_decay=5e-4)
    steps = len(loader)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: np.interp(s / steps, [0, 0.2, 1], [0, 1, 0]))
    model.train()
    start = time.perf_counter()
    for xb, yb in loader:
        loss = F.cross_entropy(model(xb), yb)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    return n / (time.perf_counter() - start)


def _warm_up(model, x, y) -> None:  # type: ignore[no-untyped-def]
    """One forward/backward pass outside the timing: first calls allocate and pick kernels."""
    import torch.nn.functional as F

    model.train()
    F.cross_entropy(model(x), y).backward()
    model.zero_grad(set_to_none=True)


if __name__ == "__main__":
    main()
