"""Device, precision and the accelerate handle; seeding; peak memory."""

from __future__ import annotations

import random
import resource
import sys
from typing import Any

from rfau_cli.errors import InputError


def make_accelerator(device: str, precision: str) -> Any:
    """auto: CUDA with bf16 when present, else CPU with fp32."""
    import torch
    from accelerate import Accelerator

    if device not in ("auto", "cpu", "cuda"):
        raise InputError(f"--device must be auto, cpu or cuda, not {device!r}")
    if precision not in ("auto", "fp32", "bf16"):
        raise InputError(f"--precision must be auto, fp32 or bf16, not {precision!r}")
    cuda = torch.cuda.is_available()
    if device == "cuda" and not cuda:
        raise InputError("--device cuda: no CUDA device is available")
    use_cpu = device == "cpu" or (device == "auto" and not cuda)
    if precision == "auto":
        precision = "bf16" if not use_cpu else "fp32"
    return Accelerator(cpu=use_cpu, mixed_precision="bf16" if precision == "bf16" else "no")


def precision_name(accelerator: Any) -> str:
    return "bf16" if accelerator.mixed_precision == "bf16" else "fp32"


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def peak_memory() -> dict[str, float]:
    """Peak resident memory of this process (and of the GPU when used), in MiB."""
    import torch

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = {"cpu_rss_mib": rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024}
    if torch.cuda.is_available():
        out["cuda_mib"] = torch.cuda.max_memory_allocated() / (1024 * 1024)
    return out
