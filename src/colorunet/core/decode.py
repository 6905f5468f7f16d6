"""From class scores to chroma: the annealed mean, and the paper's confidence maps.

Zhang et al. §2.3, Eq. 5 (taken up by ColorUNet): the mode of the predicted distribution is
vivid but patchy, its mean is smooth but pale. The annealed mean interpolates:
re-normalise p^(1/T) and take its expectation over the bin chroma. T = 1 is the
mean, T → 0 the mode; Zhang et al. use T = 0.38. The best T depends on how well a
model is trained, so it is always a user option and never baked into a model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .values import check_temperature

if TYPE_CHECKING:  # PyTorch is imported by the functions that use it: the ONNX backend runs without it
    import torch

#: Decode modes, by name.
MODES = ("annealed", "mean", "mode")
#: Zhang et al.'s choice; an undertrained model often does better nearer 1.
DEFAULT_TEMPERATURE = 0.38


def check_decode_options(mode: str, temperature: float) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown decode mode {mode!r}; choose one of {', '.join(MODES)}")
    if mode == "annealed":
        check_temperature(temperature)  # finite, and not so small that logits / T overflow


def annealed_distribution(log_probs: torch.Tensor, temperature: float, dim: int = 1) -> torch.Tensor:
    """p^(1/T) re-normalised along ``dim``.

    Takes log-probabilities *or* raw logits: logits differ from log p by a constant
    per pixel, which the re-normalisation removes, so softmax(z / T) = p^(1/T) / Σ p^(1/T).
    """
    import torch

    return torch.softmax(log_probs.float() / temperature, dim=dim)


def decode_chroma(
    log_probs: torch.Tensor, centers: torch.Tensor, mode: str = "annealed", temperature: float = DEFAULT_TEMPERATURE
) -> torch.Tensor:
    """Chroma from class scores.

    Args:
        log_probs: (B, n, H, W) logits or log-probabilities.
        centers: (n, 2) chroma of each class.
        mode: "annealed" (p^(1/T) expectation), "mean" (T = 1) or "mode" (argmax).
        temperature: T for "annealed"; ignored otherwise.
    Returns:
        (B, 2, H, W) float32 chroma (U, V).
    """
    import torch

    check_decode_options(mode, temperature)
    centers = centers.to(device=log_probs.device, dtype=torch.float32)
    if mode == "mode":
        idx = log_probs.argmax(dim=1)  # (B, H, W)
        return centers[idx].permute(0, 3, 1, 2)  # (B, 2, H, W)
    t = 1.0 if mode == "mean" else temperature
    p = annealed_distribution(log_probs, t, dim=1)  # (B, n, H, W)
    return torch.einsum("bnhw,nc->bchw", p, centers)


def confidence_maps(probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The two confidence maps of the ColorUNet paper (its analysis of prediction confidence).

    Args:
        probs: (B, n, H, W) class probabilities (T = 1).
    Returns:
        top: (B, H, W) probability of the most likely class, in [1/n, 1].
        margin: (B, H, W) 1 − p₂/p₁, the ratio of the top two mapped to [0, 1):
            0 where the two best classes tie, near 1 where the first dominates.
            (The raw ratio p₁/p₂ is unbounded and cannot be stored as an image.)
    """
    top2 = probs.float().topk(2, dim=1).values  # (B, 2, H, W)
    p1, p2 = top2[:, 0], top2[:, 1]
    return p1, 1.0 - p2 / p1.clamp_min(1e-12)


# --- the same in NumPy, for the ONNX Runtime backend (which runs without PyTorch) ---------------------


def decode_chroma_np(logits: np.ndarray, centers: np.ndarray, mode: str = "annealed", temperature: float = DEFAULT_TEMPERATURE) -> np.ndarray:
    """``decode_chroma`` on NumPy arrays: (B, n, H, W) logits, (n, 2) centres → (B, 2, H, W) float32."""
    check_decode_options(mode, temperature)
    centers = np.asarray(centers, dtype=np.float32)
    if mode == "mode":
        return np.moveaxis(centers[logits.argmax(axis=1)], -1, 1)
    p = softmax_np(np.asarray(logits, dtype=np.float32) / (1.0 if mode == "mean" else temperature))
    return np.einsum("bnhw,nc->bchw", p, centers, optimize=True).astype(np.float32)


def softmax_np(z: np.ndarray, axis: int = 1) -> np.ndarray:
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def confidence_maps_np(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``confidence_maps`` on NumPy arrays: (B, n, H, W) probabilities → top and margin, (B, H, W)."""
    part = np.partition(probs, -2, axis=1)
    p1, p2 = part[:, -1], part[:, -2]
    return p1, 1.0 - p2 / np.maximum(p1, 1e-12)
