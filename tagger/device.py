"""Where a CNN model runs: the CPU (the default), or a CUDA GPU when asked for and present.

Only torch networks use a device; the descriptor models run on numpy and ignore it.
"""
from __future__ import annotations

from tagger.errors import ModelError

DEVICES = ("cpu", "cuda", "auto")


def resolve_device(device: str) -> str:
    """'cpu', 'cuda' or 'auto' -> the torch device to use ('cpu' or 'cuda'). 'auto' is CUDA when a
    CUDA GPU is usable, else the CPU. Raises ModelError (one line) when 'cuda' is asked for and torch
    sees no CUDA GPU. Imports torch only for 'cuda' and 'auto'."""
    if device not in DEVICES:
        raise ModelError(f"--device {device!r}: use one of {', '.join(DEVICES)}")
    if device == "cpu":
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if device == "auto":
        return "cpu"
    if torch.version.cuda is None:
        why = f"this torch ({torch.__version__}) is built without CUDA"
    else:
        why = f"torch (CUDA {torch.version.cuda}) finds no usable CUDA GPU"
    raise ModelError(f"--device cuda: {why}; use --device cpu (the default) or --device auto")
