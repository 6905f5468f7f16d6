"""Which device and number format to run on.

bf16 autocast with the channels_last layout is 2–4× faster than fp32 on CPUs
with bf16 matrix instructions (AVX512-BF16, AMX) and on recent GPUs, for a
difference in decoded chroma of about 0.001 (a third of an 8-bit level).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

#: Set to "fp32" to run inference in float32 everywhere.
PRECISION_ENV = "COLORUNET_PRECISION"


def cpu_has_bf16() -> bool:
    """bf16 matrix units (AVX512-BF16 or AMX): where bf16 autocast pays off on a CPU."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but PyTorch sees no CUDA device")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ValueError(f"--device {name!r}: not a device; use auto, cpu, cuda or cuda:N") from None


def pick_dtype(precision: str, device: torch.device) -> torch.dtype:
    """"fp32", "bf16", or "auto": bf16 where the hardware runs it fast."""
    if precision == "fp32":
        return torch.float32
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    return torch.bfloat16 if cpu_has_bf16() else torch.float32


def inference_dtype(device: torch.device) -> torch.dtype:
    """The autocast type for colorizing: auto, unless COLORUNET_PRECISION says otherwise."""
    return pick_dtype(os.environ.get(PRECISION_ENV, "auto"), device)
