"""Per-example gradients of a transferred model's output, randomly projected (TRAK's features).

For one full-source model and its fixed-feature transfer heads this computes, for every source
training image and every target test image, the gradient of a model output with respect to the
*backbone* parameters (the part both datasets share), projected to d dimensions:

- output function: TRAK's multi-class margin f = log p_y / (1 − p_y) = z_y − logsumexp_{k≠y} z_k
  of the true class y. A source image goes through the source head (its class among the source
  classes); a target image through the target head — the L-BFGS logistic head(s) of the study's
  transfer, on standardised features; with several few-shot heads the target output is the mean
  of their margins, as the study's recorded outputs are means over heads;
- BatchNorm in eval mode (running statistics), as the study's fixed-feature transfer uses it;
- projection: a Rademacher matrix P (p × d, entries ±1/√d) drawn in blocks of parameter rows from
  ``projection_seed`` on the CPU, so it is the same on every device and never held whole when large;
- the source examples' TRAK weights 1 − p_y under the source head (TRAK's Q).

Gradients are taken with ``torch.func`` (vmap over grad) in batches of examples, so memory is one
batch of full gradients plus one projection block at a time.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from ..study.design import RunSpec
from ..study.gradients import GradientSettings, ProjectedGradients
from .models import TransferModel
from .transfer import LinearHead, extract_features
from .worker import Worker

PROJECTION_BLOCK_ROWS = 4096
"""Parameter rows per generated block of the projection."""

PROJECTION_CACHE_BYTES = 256 * 2**20
"""A projection smaller than this is kept on the device after it is first drawn."""


class RademacherProjection:
    """x ↦ x P for a seeded p × d Rademacher matrix P / √d, drawn block by block on the CPU."""

    def __init__(self, rows: int, dims: int, seed: int, device: torch.device) -> None:
        self.rows, self.dims, self.seed, self.device = rows, dims, seed, device
        self._keep = rows * dims * 4 <= PROJECTION_CACHE_BYTES
        self._blocks: dict[int, torch.Tensor] = {}

    def _block(self, start: int) -> torch.Tensor:
        """Rows [start, start + block) of P, from a generator seeded by (seed, start) alone."""
        if start in self._blocks:
            return self._blocks[start]
        stop = min(start + PROJECTION_BLOCK_ROWS, self.rows)
        generator = torch.Generator().manual_seed(int(np.random.SeedSequence([self.seed, start]).generate_state(1)[0]))
        signs = torch.randint(0, 2, (stop - start, self.dims), generator=generator, dtype=torch.int8)
        block = (signs.to(torch.float32) * 2 - 1).div_(self.dims**0.5).to(self.device)
        if self._keep:
            self._blocks[start] = block
        return block

    def __call__(self, flat: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(flat.shape[0], self.dims, device=flat.device, dtype=torch.float32)
        for start in range(0, self.rows, PROJECTION_BLOCK_ROWS):
            out += flat[:, start : start + PROJECTION_BLOCK_ROWS] @ self._block(start)
        return out


def true_class_margin(logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """log p_y / (1 − p_y) of one example's logits: z_y − logsumexp over the other classes."""
    is_true = torch.arange(logits.shape[-1], device=logits.device) == label
    true_logit = (logits * is_true).sum()
    return true_logit - torch.logsumexp(logits.masked_fill(is_true, float("-inf")), dim=-1)


class _TargetHeads(nn.Module):
    """The study's fitted target heads as one torch function of the features: mean margin over heads."""

    def __init__(self, heads: list[LinearHead], device: torch.device) -> None:
        super().__init__()

        def stack(name: str) -> torch.Tensor:
            return torch.from_numpy(np.stack([getattr(h, name) for h in heads])).to(device, torch.float32)

        self.register_buffer("mean", stack("mean_"))  # H × F
        self.register_buffer("scale", stack("scale_"))  # H × F
        self.register_buffer("weights", stack("weights_"))  # H × F × C
        self.register_buffer("bias", stack("bias_"))  # H × C

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """H × C logits of one example's feature vector."""
        z = (features.unsqueeze(0) - self.mean) / self.scale
        return torch.einsum("hf,hfc->hc", z, self.weights) + self.bias


class _Embedder(nn.Module):
    """``model.embed`` as a module's forward, so ``functional_call`` can run it on given parameters."""

    def __init__(self, model: TransferModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.embed(x)


def _per_example_projected(
    model: TransferModel,
    output: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    labels: torch.Tensor,
    projection: RademacherProjection,
    batch_size: int,
) -> np.ndarray:
    """Projected gradients (rows × d) of ``output(features, label)`` in the backbone parameters."""
    embedder = _Embedder(model).eval()
    backbone = {n: p.detach() for n, p in embedder.named_parameters() if not n.startswith("model.head.")}
    fixed = {n: b for n, b in embedder.named_buffers()}

    def one(params: dict[str, torch.Tensor], image: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        features = functional_call(embedder, {**params, **fixed}, (image.unsqueeze(0),))[0]
        return output(features, label)

    per_example = vmap(grad(one), in_dims=(None, 0, 0))
    chunks = []
    for start in range(0, images.shape[0], batch_size):
        grads = per_example(backbone, images[start : start + batch_size], labels[start : start + batch_size])
        flat = torch.cat([grads[n].reshape(grads[n].shape[0], -1) for n in backbone], dim=1)
        chunks.append(projection(flat.detach()).cpu().numpy())
    return np.concatenate(chunks).astype(np.float32)


def backbone_size(model: TransferModel) -> int:
    """p: the number of backbone parameters the gradients are taken in."""
    return sum(p.numel() for n, p in model.named_parameters() if not n.startswith("head."))


def _source_weights(model: TransferModel, images: torch.Tensor, labels: torch.Tensor, batch_size: int) -> np.ndarray:
    """1 − p_y of each source example under the source head (TRAK's Q)."""
    model.eval()
    with torch.inference_mode():
        probs = torch.cat([torch.softmax(model(images[s : s + batch_size]).float(), dim=1)
                           for s in range(0, images.shape[0], batch_size)])
    return (1.0 - probs[torch.arange(labels.shape[0], device=labels.device), labels]).cpu().numpy().astype(np.float32)


def _target_heads(worker: Worker, model: TransferModel) -> _TargetHeads:
    """The study's L-BFGS heads, one per few-shot training set, fitted as ``Worker._transfer`` fits them."""
    t = worker.config.transfer
    target = worker.targets[worker.config.target.name]
    features = extract_features(model, target.train_x)
    labels, heads = target.data.train.labels, target.data.train_heads
    fitted = [
        LinearHead(t.head_l2, t.head_max_iter).fit(features[heads == h], labels[heads == h], target.num_classes)
        for h in range(int(heads.max()) + 1)
    ]
    return _TargetHeads(fitted, worker.device)


def projected_gradients(
    worker: Worker, spec: RunSpec, settings: GradientSettings, batch_size: int = 128
) -> ProjectedGradients:
    """Train ``spec``'s full-source model, transfer it, and project its per-example gradients.

    Only fixed-feature transfer with frozen BatchNorm and the L-BFGS head is taken (checked by the
    caller): then the target model is the backbone followed by a fixed linear map, whose gradient is
    the one written here."""
    model = worker.trained_source(spec).to(memory_format=torch.contiguous_format).eval()
    projection = RademacherProjection(backbone_size(model), settings.dims, settings.projection_seed, worker.device)
    heads = _target_heads(worker, model)
    source_x = worker.source_images().contiguous()
    target = worker.targets[worker.config.target.name]
    target_y = torch.from_numpy(target.data.test.labels.astype(np.int64)).to(worker.device)

    def source_margin(features: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return true_class_margin(model.head(features), label)

    def target_margin(features: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        logits = heads.logits(features)
        return torch.stack([true_class_margin(row, label) for row in logits]).mean()

    return ProjectedGradients(
        source=_per_example_projected(model, source_margin, source_x, worker.source_y, projection, batch_size),
        target=_per_example_projected(
            model, target_margin, target.test_x.contiguous(), target_y, projection, batch_size
        ),
        source_weights=_source_weights(model, source_x, worker.source_y, batch_size),
        seed=spec.seed,
    )
