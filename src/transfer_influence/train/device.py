"""Device choice for training: CPU, CUDA, or whichever is present."""

from __future__ import annotations

import torch

from ..errors import InputError


def select_device(requested: str) -> torch.device:
    """'auto' takes CUDA when present; asking for CUDA without one is an error, not a silent fallback."""
    if requested == "cuda" and not torch.cuda.is_available():
        raise InputError("execution.device is 'cuda' but torch sees no CUDA device; use 'cpu' or 'auto'")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def resolved_device_type(requested: str) -> str:
    """'cpu' or 'cuda': the device type a run with ``execution.device = requested`` uses here."""
    return select_device(requested).type


def set_threads(threads: int) -> None:
    """Torch intra-op threads of this process (workers: one each; more processes beat more threads)."""
    torch.set_num_threads(threads)
