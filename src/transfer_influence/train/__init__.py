"""Training and transfer: the only layer that imports torch.

``models`` (architectures), ``source`` (algorithm A), ``transfer`` (fixed-feature head and the
per-example outputs), ``device`` (device choice) and ``worker`` (the stateless worker: a run spec in,
outputs out). Importing this package does not import torch; its modules do.
"""
