"""Fixed-feature transfer and the per-example outputs f_i(t_j).

The backbone is frozen and run in eval mode, so BatchNorm uses the running statistics gathered on
the *source* data: the target data never changes the backbone. (The paper's code leaves BatchNorm
in train mode, which lets target data leak into the "frozen" features.) The new head is a
multinomial logistic regression fitted to convergence by L-BFGS on standardised features: a
deterministic closed problem, so head-training noise does not add to the noise between models.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import minimize
from scipy.special import log_softmax
from torch import nn

from ..study.outputs import OUTPUT_KINDS, output_kinds_from_logits

__all__ = ["OUTPUT_KINDS", "LinearHead", "extract_features", "output_kinds_from_logits"]

@torch.inference_mode()
def extract_features(backbone: nn.Module, images: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    backbone.eval()
    chunks = [backbone.embed(images[s : s + batch_size]) for s in range(0, images.shape[0], batch_size)]
    return torch.cat(chunks).float().cpu().numpy().astype(np.float64)


class LinearHead:
    """Multinomial logistic regression with an L2 penalty on the weights (not the bias)."""

    def __init__(self, l2: float, max_iter: int) -> None:
        self.l2 = l2
        self.max_iter = max_iter

    def fit(self, features: np.ndarray, labels: np.ndarray, num_classes: int) -> "LinearHead":
        self.mean_ = features.mean(axis=0)
        self.scale_ = features.std(axis=0) + 1e-6
        z = (features - self.mean_) / self.scale_
        n, d = z.shape
        onehot = np.eye(num_classes)[labels]

        def loss_and_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
            w = theta[: d * num_classes].reshape(d, num_classes)
            b = theta[d * num_classes :]
            logits = z @ w + b
            logp = log_softmax(logits, axis=1)
            loss = -(onehot * logp).sum() / n + 0.5 * self.l2 * float((w * w).sum())
            residual = (np.exp(logp) - onehot) / n
            grad_w = z.T @ residual + self.l2 * w
            return loss, np.concatenate([grad_w.ravel(), residual.sum(axis=0)])

        theta0 = np.zeros(d * num_classes + num_classes)
        result = minimize(
            loss_and_grad, theta0, jac=True, method="L-BFGS-B", options={"maxiter": self.max_iter}
        )
        self.weights_ = result.x[: d * num_classes].reshape(d, num_classes)
        self.bias_ = result.x[d * num_classes :]
        return self

    def logits(self, features: np.ndarray) -> np.ndarray:
        return ((features - self.mean_) / self.scale_) @ self.weights_ + self.bias_
