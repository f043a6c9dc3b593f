"""Transfer to the target and the per-example outputs f_i(t_j).

Fixed-feature transfer with the default L-BFGS head: the backbone is frozen and run in eval mode, so BatchNorm uses the running statistics gathered on
the *source* data: the target data never changes the backbone. (The paper's code leaves BatchNorm
in train mode, which lets target data leak into the "frozen" features.) The new head is a
multinomial logistic regression fitted to convergence by L-BFGS on standardised features: a
deterministic closed problem, so head-training noise does not add to the noise between models.

The paper's own variants are here too: a linear head trained by SGD with a cyclic rate on the
frozen features (``sgd_head_logits``), and full fine-tuning or a BatchNorm-in-train-mode head
(``fine_tune_logits``), both with the source-training loop of ``source.py``.
"""

from __future__ import annotations

import copy
from contextlib import AbstractContextManager
from functools import cache
from typing import Callable

import numpy as np
import torch
from scipy.optimize import minimize
from threadpoolctl import ThreadpoolController
from torch import nn

from .models import TransferModel
from .source import TrainSettings, train_classifier
from ..study.outputs import OUTPUT_KINDS, output_kinds_from_logits

__all__ = [
    "OUTPUT_KINDS",
    "LinearHead",
    "extract_features",
    "fine_tune",
    "fine_tune_logits",
    "predict_logits",
    "output_kinds_from_logits",
    "sgd_head_logits",
]

@torch.inference_mode()
def extract_features(backbone: nn.Module, images: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    backbone.eval()
    chunks = [backbone.embed(images[s : s + batch_size]) for s in range(0, images.shape[0], batch_size)]
    return torch.cat(chunks).float().cpu().numpy().astype(np.float64)


@cache
def _blas_threads() -> ThreadpoolController:
    """The BLAS libraries loaded in this process (numpy's and scipy's), found once (a few ms)."""
    return ThreadpoolController()


def _one_blas_thread() -> AbstractContextManager[object]:
    """Run the head's linear algebra on the calling thread only.

    The head is a 100 × 128 problem: a second BLAS thread cannot speed it up, but waiting for one
    in each of L-BFGS-B's ~60 iterations costs milliseconds whenever the other core is busy (always,
    with one worker process per core), and the idle thread keeps that core busy, slowing the other
    worker's training. Left to its default, BLAS made a demo model 1.6× slower on 2 worker
    processes (head fit 60-700 ms instead of 7 ms; source training 274 ms instead of 190 ms).
    """
    return _blas_threads().limit(limits=1, user_api="blas")


class LinearHead:
    """Multinomial logistic regression with an L2 penalty on the weights (not the bias)."""

    def __init__(self, l2: float, max_iter: int) -> None:
        self.l2 = l2
        self.max_iter = max_iter

    def fit(self, features: np.ndarray, labels: np.ndarray, num_classes: int) -> "LinearHead":
        self.mean_ = features.mean(axis=0)
        self.scale_ = features.std(axis=0) + 1e-6
        z = (features - self.mean_) / self.scale_
        d = z.shape[1]
        with _one_blas_thread():
            theta = minimize(
                _penalised_cross_entropy(z, labels, num_classes, self.l2),
                np.zeros(d * num_classes + num_classes),
                jac=True,
                method="L-BFGS-B",
                options={"maxiter": self.max_iter},
            ).x
        self.weights_ = theta[: d * num_classes].reshape(d, num_classes)
        self.bias_ = theta[d * num_classes :]
        return self

    def logits(self, features: np.ndarray) -> np.ndarray:
        with _one_blas_thread():
            return ((features - self.mean_) / self.scale_) @ self.weights_ + self.bias_


def _penalised_cross_entropy(
    z: np.ndarray, labels: np.ndarray, num_classes: int, l2: float
) -> Callable[[np.ndarray], tuple[float, np.ndarray]]:
    """Loss and gradient of mean cross-entropy + ½·l2·‖W‖² in θ = (W.ravel(), b).

    Works in one (n, classes) buffer per call (shifted logits → probabilities → residual): the
    objective is evaluated ~60 times per head, and fewer temporaries make the fit ~12% faster.
    """
    n, d = z.shape
    size_w = d * num_classes
    z_t = np.ascontiguousarray(z.T)
    rows = np.arange(n)

    def loss_and_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w_flat = theta[:size_w]
        w = w_flat.reshape(d, num_classes)
        shifted = z @ w
        shifted += theta[size_w:]
        shifted -= shifted.max(axis=1, keepdims=True)
        true_shifted = shifted[rows, labels]
        probs = np.exp(shifted, out=shifted)
        partition = probs.sum(axis=1)
        loss = (np.log(partition).sum() - true_shifted.sum()) / n + 0.5 * l2 * float(w_flat @ w_flat)
        residual = probs
        residual /= partition[:, None]
        residual[rows, labels] -= 1.0
        residual /= n
        grad = np.empty_like(theta)
        grad_w = grad[:size_w].reshape(d, num_classes)
        np.matmul(z_t, residual, out=grad_w)
        grad_w += l2 * w
        residual.sum(axis=0, out=grad[size_w:])
        return loss, grad

    return loss_and_grad


def sgd_head_logits(
    train_features: np.ndarray,
    labels: np.ndarray,
    test_features: np.ndarray,
    num_classes: int,
    settings: TrainSettings,
    generator: torch.Generator,
    device: torch.device,
) -> np.ndarray:
    """A new linear layer trained by SGD on frozen features (the paper's fixed-feature head); test logits.

    The features are computed once: with BatchNorm frozen and no augmentation the backbone's output
    per image is fixed, so running the backbone every epoch would only repeat the same numbers.
    """
    head = nn.Linear(train_features.shape[1], num_classes).to(device)
    x = torch.from_numpy(train_features).to(device=device, dtype=torch.float32)
    y = torch.from_numpy(np.asarray(labels, dtype=np.int64)).to(device)
    train_classifier(head, x, y, settings, generator)
    head.eval()
    with torch.inference_mode():
        test = torch.from_numpy(test_features).to(device=device, dtype=torch.float32)
        return head(test).double().cpu().numpy()


def fine_tune(
    source_model: TransferModel,
    train_images: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    settings: TrainSettings,
    generator: torch.Generator,
    train_backbone: bool,
    amp: bool = False,
) -> TransferModel:
    """A copy of the source model with a new head, trained on the target (the source model is untouched).

    ``train_backbone`` False trains the new head only (the backbone still runs every step, because
    BatchNorm in train mode changes its features batch by batch); True is full fine-tuning.
    ``settings.frozen_batchnorm`` keeps the source's BatchNorm statistics throughout.
    """
    model = copy.deepcopy(source_model)
    model.head = nn.Linear(model.feature_dim, num_classes).to(train_images.device)
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(train_backbone or name.startswith("head."))
    train_classifier(model, train_images, labels, settings, generator, amp=amp)
    return model


@torch.inference_mode()
def predict_logits(model: nn.Module, images: torch.Tensor, amp: bool = False, batch_size: int = 256) -> np.ndarray:
    """Logits in eval mode (BatchNorm on running statistics), as float64 numpy."""
    model.eval()
    use_amp = amp and images.device.type == "cuda"
    chunks = []
    with torch.autocast(images.device.type, enabled=use_amp, dtype=torch.bfloat16):
        for start in range(0, images.shape[0], batch_size):
            chunks.append(model(images[start : start + batch_size]).float())
    return torch.cat(chunks).double().cpu().numpy()


def fine_tune_logits(
    source_model: TransferModel,
    train_images: torch.Tensor,
    labels: torch.Tensor,
    test_images: torch.Tensor,
    num_classes: int,
    settings: TrainSettings,
    generator: torch.Generator,
    train_backbone: bool,
    amp: bool = False,
) -> np.ndarray:
    """``fine_tune`` then the test logits: each of several heads (``target.head_splits``) starts from
    the same source model."""
    model = fine_tune(source_model, train_images, labels, num_classes, settings, generator, train_backbone, amp)
    return predict_logits(model, test_images, amp)
