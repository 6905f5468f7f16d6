"""Colorize one photo: the single inference path behind the CLI, the Python API and evaluation.

1. Read the photo's luma Y at full resolution (EXIF orientation applied).
2. Resize Y (Lanczos) so its short side is ``working_size`` and pad it to a
   multiple of the network's size; the network runs only at this size.
3. Decode the class scores to chroma (annealed mean, mean or mode) at that size.
4. Upsample the chroma (bilinear) to full size and recombine it with the
   original full-resolution Y, so every detail of the photo is kept: chroma is
   low-frequency, which is why predicting it at a low resolution works at all.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..core.decode import check_decode_options, confidence_maps, decode_chroma
from .refine import Hints
from ..core.weights import ColorModel, load_model
from .working import DEFAULT_WORKING_SIZE, Colorization, confidence_image, ImageLike, pad_to_multiple, read_luma, recombine, working_luma, working_shape  # noqa: F401 (re-exported)

ModelLike = Union[ColorModel, str, os.PathLike, None]


@lru_cache(maxsize=4)
def _cached_model(spec: str) -> ColorModel:
    return load_model(spec)


def get_model(model: ModelLike) -> ColorModel:
    """A ColorModel from a ColorModel, a name, a path, or None (the shipped default)."""
    if isinstance(model, ColorModel):
        return model
    return _cached_model(str(model) if model is not None else "default")


def predict_scores(model: ColorModel, small: np.ndarray) -> torch.Tensor:
    """Network output for a working-size luma image.

    Args:
        small: (h, w) float32 luma in [0, 1] (``working_luma``).
    Returns:
        (1, C, h, w) float32: class logits (C = n) or chroma (C = 2, regression head).
    """
    h, w = small.shape
    x = torch.from_numpy(pad_to_multiple(small, model.config.size_multiple))[None, None]  # (1, 1, h', w')
    device = next(model.net.parameters()).device
    # channels_last: the layout oneDNN's and cuDNN's fastest convolutions use
    x = x.to(device).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), torch.autocast(device.type, dtype=model.dtype, enabled=model.dtype != torch.float32):
        out = model.inference_net(x).float()
    return out[..., :h, :w].cpu()


@dataclass
class Prediction:
    """What the network said about a photo, before decoding: enough to re-decode at
    another temperature or mode without running the network again (the web app does).

    Attributes:
        model: the model that made it.
        luma: (H, W) float32 full-resolution luma of the photo.
        alpha: (H, W) uint8 alpha channel, or None.
        scores: (1, C, h, w) network output at the working size (logits, or UV).
        small_luma: (h, w) the luma the network saw (refinement propagates along it).
        notes: things the user should know, passed on to the Colorization.
    """

    model: ColorModel
    luma: np.ndarray
    alpha: np.ndarray | None
    scores: torch.Tensor
    small_luma: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)


def predict(image: ImageLike, model: ModelLike = None, working_size: int = DEFAULT_WORKING_SIZE) -> Prediction:
    """Steps 1–2: read the photo's luma and run the network at the working size."""
    m = get_model(model)
    y, alpha, notes = read_luma(image, m.config.color_space)
    small = working_luma(y, working_size)
    return Prediction(m, y, alpha, predict_scores(m, small), small, notes)


def render(
    pred: Prediction,
    temperature: float | None = None,
    mode: str = "annealed",
    confidence: bool = False,
    refine: bool = False,
    hints: Hints | None = None,
) -> Colorization:
    """Steps 3–4: decode chroma, optionally propagate it (``refine``, ``hints``),
    upsample it and recombine it with the full-resolution luma."""
    m = pred.model
    temperature = m.temperature if temperature is None else temperature
    check_decode_options(mode, temperature)
    H, W = pred.luma.shape
    if m.config.head == "regression":
        uv_small = pred.scores
    else:
        uv_small = decode_chroma(pred.scores, torch.from_numpy(m.quantizer.centers), mode, temperature)
    if refine or hints:
        check_refine_options(m, refine)
        uv_small = _propagate(pred, uv_small, refine, hints)
    uv = F.interpolate(uv_small, size=(H, W), mode="bilinear", align_corners=False)[0].numpy()  # (2, H, W)
    result = Colorization(recombine(pred.luma, uv[0], uv[1], pred.alpha, m.config.color_space), notes=list(pred.notes))
    if confidence and m.config.head == "classification":
        top, margin = confidence_maps(torch.softmax(pred.scores, dim=1))
        full = F.interpolate(torch.stack([top, margin], dim=1), size=(H, W), mode="bilinear", align_corners=False)[0]
        result.confidence_top, result.confidence_margin = full[0].numpy(), full[1].numpy()
    return result


def check_refine_options(model: ColorModel, refine: bool) -> None:
    """Refinement and hints propagate UV chroma; refinement picks its seeds by class confidence."""
    if model.config.color_space != "yuv":
        raise ValueError("refinement and hints work on YUV models (this one predicts Lab ab)")
    if refine and model.config.head != "classification":
        raise ValueError("--refine needs a classification model: it seeds from the confidence of the colour classes, "
                         "and a regression model has none (hints work without it)")


def _propagate(pred: Prediction, uv_small: torch.Tensor, refine: bool, hints: Hints | None) -> torch.Tensor:
    """Confidence-seeded and/or hint-driven propagation of the chroma (``refine.py``)."""
    from .refine import confident_seeds, rasterize_hints, refine_chroma

    small = pred.small_luma
    seeds = None
    if refine:
        top = torch.softmax(pred.scores, dim=1).max(dim=1)
        seeds = confident_seeds(top.values[0].numpy(), top.indices[0].numpy(), pred.scores.shape[1])  # (h, w)
    mask = hint_uv = None
    if hints:
        mask, hint_uv = rasterize_hints(hints, pred.luma.shape, small.shape)
    if seeds is None and mask is None:
        return uv_small
    uv = refine_chroma(small, uv_small[0].permute(1, 2, 0).numpy(), seeds, mask, hint_uv)
    return torch.from_numpy(uv).permute(2, 0, 1)[None]  # (1, 2, h, w)


def colorize_full(
    image: ImageLike,
    model: ModelLike = None,
    temperature: float | None = None,
    mode: str = "annealed",
    working_size: int = DEFAULT_WORKING_SIZE,
    confidence: bool = False,
    refine: bool = False,
    hints: Hints | dict | list | None = None,
) -> Colorization:
    """Colorize a photo; see ``colorize``. Also returns confidence maps if asked."""
    m = get_model(model)
    check_decode_options(mode, m.temperature if temperature is None else temperature)  # before any work
    if refine or hints:
        check_refine_options(m, refine)
    if hints is not None and not isinstance(hints, Hints):
        from .refine import parse_hints

        hints = parse_hints(hints)
    return render(predict(image, m, working_size), temperature, mode, confidence, refine, hints)


def colorize(
    image: ImageLike,
    model: ModelLike = None,
    temperature: float | None = None,
    mode: str = "annealed",
    working_size: int = DEFAULT_WORKING_SIZE,
    refine: bool = False,
    hints: Hints | dict | list | None = None,
) -> Image.Image:
    """Colorize a photo.

    Args:
        image: a PIL image, an (H, W) or (H, W, 3) array (uint8, or float in [0, 1]),
            or a file path. Colour photos are colorized from their own luma.
        model: a ColorModel, a model name ("default"), a ``.safetensors`` file or a
            run folder; None for the shipped default.
        temperature: annealed-mean temperature T (lower is more vivid); None takes
            the model's own, measured when it was made (``ColorModel.temperature``).
        mode: "annealed", "mean" or "mode".
        working_size: short side at which the network runs.
        refine: propagate the colours of the network's most confident pixels along
            luminance edges (Levin et al. 2004), to remove stains and bleeding.
        hints: colours given by a person, ``{"points": [{"x", "y", "color"}],
            "strokes": [{"points": [[x, y], …], "color", "width"}]}`` in pixel
            coordinates of the photo; they win where given and spread along edges.
    Returns:
        An RGB PIL image (RGBA if the input had alpha) of the input's size, whose
        luma equals the input's within rounding.
    """
    return colorize_full(image, model, temperature, mode, working_size, refine=refine, hints=hints).image


def default_sample() -> Path:
    """The black-and-white photo shipped with the package (scikit-image's "camera", CC0)."""
    return Path(__file__).parents[1] / "assets" / "samples" / "camera.png"
