"""Claim: the demo trains and transfers ≥ 60 models/minute at α = 0.5 on 2 CPU cores.

Runs the demo's subset models two ways, side by side in one run, each as 2 spawned processes × 1
torch thread (the demo's default layout):

* ``transfer-influence``: the project's worker (tensors held in memory and indexed per batch,
  channels-last, pool-before-BatchNorm blocks),
* ``plain DataLoader``: the same architecture, optimiser, schedule and transfer, but trained the
  way a plain PyTorch script does it: ``DataLoader(TensorDataset(...), shuffle=True)`` batches over
  NCHW tensors, conv → BatchNorm → ReLU → max-pool blocks.

Prints models/minute for each (wall time from the first model started to the last finished,
process start-up excluded) and their ratio.

    python bench/models_per_minute.py [--models 40] [--alpha 0.5]
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np

from _setup import ensure_malloc_tuning
from transfer_influence.study.config import StudyConfig, load_config, packaged_config
from transfer_influence.study.design import subset_runs
from transfer_influence.study.views import build_study_data, load_study_data, save_study_data

_state: dict = {}


def _plain_train_source(self, model, classes, seed):  # type: ignore[no-untyped-def]
    """Replacement for Worker._train_source: a textbook DataLoader loop over NCHW tensors."""
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader, TensorDataset

    from transfer_influence.train.source import accuracy

    keep = np.isin(self.data.source_train.labels, classes)
    remap = np.full(self.num_classes, -1)
    remap[classes] = np.arange(len(classes))
    x = self.source_x[torch.from_numpy(keep)].contiguous()
    y = torch.from_numpy(remap[self.data.source_train.labels[keep]])
    t = self.config.train
    loader = DataLoader(TensorDataset(x, y), batch_size=t.batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed))
    optimizer = torch.optim.Adam(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=t.lr, total_steps=t.epochs * len(loader))
    model.train()
    for _ in range(t.epochs):
        for xb, yb in loader:
            loss = F.cross_entropy(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    hold = np.isin(self.data.source_holdout.labels, classes)
    hx = self.holdout_x[torch.from_numpy(hold)].contiguous()
    hy = torch.from_numpy(remap[self.data.source_holdout.labels[hold]])
    return model, accuracy(model, hx, hy)


def _plain_model(self, num_outputs):  # type: ignore[no-untyped-def]
    """The same layers in the textbook order (conv → BN → ReLU → pool), NCHW."""
    from torch import nn

    from transfer_influence.train.models import SmallCNN

    c1, c2, c3 = self.config.model.channels
    model = SmallCNN(num_outputs, 1, 28, (c1, c2, c3), self.config.model.feature_dim)

    def block(cin: int, cout: int, pool: bool) -> nn.Sequential:
        layers = [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
        return nn.Sequential(*layers, *( [nn.MaxPool2d(2)] if pool else []))

    model.backbone_convs = nn.Sequential(block(1, c1, True), block(c1, c2, True), block(c2, c3, False), nn.Flatten())
    return model


def _init(data_path: str, config_json: str, variant: str) -> None:
    import torch

    from transfer_influence.train.worker import Worker

    torch.set_num_threads(1)
    config = StudyConfig.model_validate_json(config_json)
    worker = Worker(config, load_study_data(Path(data_path)))
    if variant == "plain":
        worker._memory_format = torch.contiguous_format
        for name in ("source_x", "holdout_x"):
            setattr(worker, name, getattr(worker, name).contiguous())
        for target in worker.targets.values():
            target.train_x, target.test_x = target.train_x.contiguous(), target.test_x.contiguous()
        worker._train_source = _plain_train_source.__get__(worker)
        worker._new_model = _plain_model.__get__(worker)
    _state["worker"] = worker


def _run(spec):  # type: ignore[no-untyped-def]
    start = time.time()
    result = _state["worker"].run(spec)
    return start, time.time(), result.target_accuracy


def measure(variant: str, data_path: Path, config: StudyConfig, specs: list) -> tuple[float, float]:
    with ProcessPoolExecutor(2, mp_context=get_context("spawn"), initializer=_init,
                             initargs=(str(data_path), config.model_dump_json(), variant)) as pool:
        list(pool.map(_run, specs[:2]))  # warm-up: process start-up and first-call costs
        timings = list(pool.map(_run, specs))
    wall = max(t[1] for t in timings) - min(t[0] for t in timings)
    return len(specs) / wall * 60, float(np.mean([t[2] for t in timings]))


def main() -> None:
    ensure_malloc_tuning()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=40)
    parser.add_argument("--alpha", type=float, default=0.5)
    args = parser.parse_args()
    config = load_config(packaged_config("demo")).with_overrides(**{"design.alpha": args.alpha})
    data = build_study_data(config)
    specs = subset_runs(config, len(data.class_names), range(args.models))
    with TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.npz"
        save_study_data(data, path)
        ours, acc_ours = measure("ours", path, config, specs)
        plain, acc_plain = measure("plain", path, config, specs)
    print(f"demo models (α={args.alpha}, {len(data.class_names)} source classes, {args.models} models each, 2 processes × 1 thread)")
    print(f"transfer-influence worker: {ours:6.1f} models/min  (mean target acc {acc_ours:.3f})")
    print(f"plain DataLoader loop:     {plain:6.1f} models/min  (mean target acc {acc_plain:.3f})")
    print(f"ratio: {ours / plain:.2f}×   goal: ≥ 60 models/min at α = 0.5")


if __name__ == "__main__":
    main()
