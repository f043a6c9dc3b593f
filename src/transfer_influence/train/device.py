"""Device choice for training: CPU, CUDA, or whichever is present.

torch is imported inside the functions: the process that schedules a CPU study resolves its device
(for the study's results key) without loading torch, which only its workers need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import InputError

if TYPE_CHECKING:
    import torch


def select_device(requested: str) -> "torch.device":
    """'auto' takes CUDA when present; asking for CUDA without one is an error, not a silent fallback."""
    import torch

    if requested == "cuda" and not torch.cuda.is_available():
        raise InputError("execution.device is 'cuda' but torch sees no CUDA device; use 'cpu' or 'auto'")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def resolved_device_type(requested: str) -> str:
    """'cpu' or 'cuda': the device type a run with ``execution.device = requested`` uses here."""
    if requested == "cpu":
        return "cpu"
    return select_device(requested).type


def visible_gpus() -> list[str]:
    """Ids of the GPUs this process may use: ``CUDA_VISIBLE_DEVICES`` when set, else every device
    torch sees (none without CUDA)."""
    import os

    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [g.strip() for g in listed.split(",") if g.strip() and g.strip() != "-1"]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


def set_threads(threads: int) -> None:
    """Torch intra-op threads of this process (workers: one each; more processes beat more threads)."""
    import torch

    torch.set_num_threads(threads)
