"""From class scores to chroma: the annealed mean, and the paper's confidence maps.

Zhang et al. §2.3, Eq. 5 (taken up by ColorUNet): the mode of the predicted distribution is
vivid but patchy, its mean is smooth but pale. The annealed mean interpolates:
re-normalise p^(1/T) and take its expectation over the bin chroma. T = 1 is the
mean, T → 0 the mode; Zhang et al. use T = 0.38. The best T depends on how well a
model is trained, so it is always a user option and never baked into a model.

One implementation, in NumPy, serves every backend (the ONNX one runs without
PyTorch). The functions also take PyTorch tensors, and then give tensors back.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .values import check_temperature

#: Decode modes, by name.
MODES = ("annealed", "mean", "mode")
#: Zhang et al.'s choice; an undertrained model often does better nearer 1.
DEFAULT_TEMPERATURE = 0.38


def check_decode_options(mode: str, temperature: float) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown decode mode {mode!r}; choose one of {', '.join(MODES)}")
    if mode == "annealed":
        check_temperature(temperature)  # finite, and not so small that logits / T overflow


def softmax(z: np.ndarray, axis: int = 1) -> np.ndarray:
    """exp(z) normalised along ``axis``, shifted by the maximum first so that large logits cannot overflow."""
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def annealed_distribution(log_probs: Any, temperature: float, dim: int = 1) -> Any:
    """p^(1/T) re-normalised along ``dim``.

    Takes log-probabilities *or* raw logits: logits differ from log p by a constant
    per pixel, which the re-normalisation removes, so softmax(z / T) = p^(1/T) / Σ p^(1/T).
    """
    if _is_tensor(log_probs):
        return _as_tensor_like(annealed_distribution(_numpy(log_probs), temperature, dim), log_probs)
    return softmax(np.asarray(log_probs, dtype=np.float32) / np.float32(temperature), axis=dim)


def decode_chroma(log_probs: Any, centers: Any, mode: str = "annealed", temperature: float = DEFAULT_TEMPERATURE) -> Any:
    """Chroma from class scores.

    Args:
        log_probs: (B, n, H, W) logits or log-probabilities.
        centers: (n, 2) chroma of each class.
        mode: "annealed" (p^(1/T) expectation), "mean" (T = 1) or "mode" (argmax).
        temperature: T for "annealed"; ignored otherwise.
    Returns:
        (B, 2, H, W) float32 chroma (U, V); a tensor if ``log_probs`` is one.
    """
    if _is_tensor(log_probs):
        return _as_tensor_like(decode_chroma(_numpy(log_probs), _numpy(centers), mode, temperature), log_probs)
    check_decode_options(mode, temperature)
    centers = np.asarray(centers, dtype=np.float32)
    if mode == "mode":
        return np.moveaxis(centers[np.asarray(log_probs).argmax(axis=1)], -1, 1)  # (B, 2, H, W)
    p = annealed_distribution(log_probs, 1.0 if mode == "mean" else temperature, dim=1)  # (B, n, H, W)
    return np.einsum("bnhw,nc->bchw", p, centers, optimize=True).astype(np.float32)


def confidence_maps(probs: Any) -> tuple[Any, Any]:
    """The two confidence maps of the ColorUNet paper (its analysis of prediction confidence).

    Args:
        probs: (B, n, H, W) class probabilities (T = 1).
    Returns:
        top: (B, H, W) probability of the most likely class, in [1/n, 1].
        margin: (B, H, W) 1 − p₂/p₁, the ratio of the top two mapped to [0, 1):
            0 where the two best classes tie, near 1 where the first dominates.
            (The raw ratio p₁/p₂ is unbounded and cannot be stored as an image.)
    """
    if _is_tensor(probs):
        return tuple(_as_tensor_like(m, probs) for m in confidence_maps(_numpy(probs)))
    part = np.partition(np.asarray(probs, dtype=np.float32), -2, axis=1)
    p1, p2 = part[:, -1], part[:, -2]
    return p1, 1.0 - p2 / np.maximum(p1, 1e-12)


#: The names these had when the PyTorch backend had its own twins (kept for code that imports them).
decode_chroma_np = decode_chroma
confidence_maps_np = confidence_maps
softmax_np = softmax


def _is_tensor(x: Any) -> bool:
    return type(x).__module__.startswith("torch")  # without importing torch


def _numpy(x: Any) -> np.ndarray:
    return x.detach().float().cpu().numpy() if _is_tensor(x) else np.asarray(x)


def _as_tensor_like(a: np.ndarray, like: Any) -> Any:
    import torch

    return torch.from_numpy(np.ascontiguousarray(a)).to(like.device)
