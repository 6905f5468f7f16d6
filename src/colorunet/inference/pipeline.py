"""Colorize one photo: the single inference path behind the CLI, the Python API, evaluation, video,
the web app and both backends (``backend.Backend``: PyTorch or ONNX Runtime).

1. Read the photo's luma Y at full resolution (EXIF orientation applied).
2. Resize Y (Lanczos) so its short side is ``working_size`` and pad it to a
   multiple of the network's size; the network (the backend) runs only at this size.
3. Decode the class scores to chroma (annealed mean, mean or mode) at that size,
   and optionally propagate it along the luma's edges (``refine``, hints).
4. Upsample the chroma (bilinear) to full size and recombine it with the
   original full-resolution Y, so every detail of the photo is kept: chroma is
   low-frequency, which is why predicting it at a low resolution works at all.

Importing this module does not import PyTorch: ``get_model`` loads it for a
PyTorch model, and an ``OnnxModel`` runs without it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np
from PIL import Image

from ..core.decode import check_decode_options, confidence_maps, decode_chroma, softmax
from .backend import Backend
from .reference import DEFAULT_STRENGTH, reference_bias, strength_for
from .refine import Hints
from .working import (  # noqa: F401 (DEFAULT_WORKING_SIZE, confidence_image, working_shape: re-exported)
    DEFAULT_WORKING_SIZE,
    Colorization,
    ImageLike,
    confidence_image,
    read_luma,
    recombine,
    upsample,
    working_luma,
    working_shape,
)

if TYPE_CHECKING:
    from ..core.weights import ColorModel

ModelLike = Union["ColorModel", Backend, str, os.PathLike, None]


@lru_cache(maxsize=4)
def _cached_model(spec: str) -> ColorModel:
    from ..core.weights import load_model

    return load_model(spec)


def get_model(model: ModelLike) -> Backend:
    """A model to colorize with: a ColorModel or another backend (an ``OnnxModel``) as it is, else the
    PyTorch model of a name, a path, or None (the shipped default)."""
    if hasattr(model, "scores"):
        return model
    return _cached_model(str(model) if model is not None else "default")


def predict_scores(model: Backend, small: np.ndarray) -> np.ndarray:
    """Network output for a working-size luma image: ``model.scores(small)``.

    Args:
        small: (h, w) float32 luma in [0, 1] (``working_luma``).
    Returns:
        (1, C, h, w) float32: class logits (C = n) or chroma (C = 2, regression head).
    """
    return model.scores(small)


@dataclass
class Prediction:
    """What the network said about a photo, before decoding: enough to re-decode at
    another temperature or mode without running the network again (the web app does).

    Attributes:
        model: the model (backend) that made it.
        luma: (H, W) float32 full-resolution luma of the photo.
        alpha: (H, W) uint8 alpha channel, or None.
        scores: (1, C, h, w) float32 network output at the working size (logits, or UV).
        small_luma: (h, w) the luma the network saw (refinement propagates along it).
        notes: things the user should know, passed on to the Colorization.
    """

    model: Backend
    luma: np.ndarray
    alpha: np.ndarray | None
    scores: Any  # np.ndarray (a PyTorch tensor is accepted too)
    small_luma: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)


def predict(image: ImageLike, model: ModelLike = None, working_size: int = DEFAULT_WORKING_SIZE) -> Prediction:
    """Steps 1–2: read the photo's luma and run the network at the working size."""
    m = get_model(model)
    y, alpha, notes = read_luma(image, m.color_space)
    small = working_luma(y, working_size)
    return Prediction(m, y, alpha, m.scores(small), small, notes)


def render(
    pred: Prediction,
    temperature: float | None = None,
    mode: str = "annealed",
    confidence: bool = False,
    refine: bool = False,
    hints: Hints | None = None,
    bias: np.ndarray | None = None,
) -> Colorization:
    """Steps 3–4: decode chroma, optionally propagate it (``refine``, ``hints``),
    upsample it and recombine it with the full-resolution luma.

    ``bias`` (n,) is added to every pixel's class logits before decoding: a reference
    photo's palette (``reference_bias_for``)."""
    m = pred.model
    temperature = m.temperature if temperature is None else temperature
    check_decode_options(mode, temperature)
    size = pred.luma.shape
    scores = _as_array(pred.scores)
    if bias is not None:
        check_reference_options(m)
        if np.shape(bias) != (scores.shape[1],):
            raise ValueError(f"a class bias must have one value per colour class ({scores.shape[1]}), got shape {np.shape(bias)}")
        scores = scores + np.asarray(bias, np.float32)[None, :, None, None]
    if m.head == "regression":
        uv_small = scores[0]
    else:
        uv_small = decode_chroma(scores, m.centers, mode, temperature)[0]  # (2, h, w)
    if refine or hints:
        check_refine_options(m, refine)
        uv_small = _propagate(pred, scores, uv_small, refine, hints)
    uv = upsample(uv_small, size)  # (2, H, W)
    result = Colorization(recombine(pred.luma, uv[0], uv[1], pred.alpha, m.color_space), notes=list(pred.notes))
    if confidence and m.head == "classification":
        top, margin = confidence_maps(softmax(scores))
        result.confidence_top, result.confidence_margin = upsample(np.concatenate([top, margin]), size)
    return result


def check_refine_options(model: Backend, refine: bool) -> None:
    """Refinement and hints propagate UV chroma; refinement picks its seeds by class confidence."""
    if model.color_space != "yuv":
        raise ValueError("refinement and hints work on YUV models (this one predicts Lab ab)")
    if refine and model.head != "classification":
        raise ValueError("--refine needs a classification model: it seeds from the confidence of the colour classes, "
                         "and a regression model has none (hints work without it)")


def check_reference_options(model: Backend) -> None:
    """A reference re-weights the colour classes: a regression model has none."""
    if model.head != "classification":
        raise ValueError("--reference needs a classification model: it re-weights the colour classes, "
                         "and a regression model predicts one colour per pixel instead")
    if getattr(model, "prior", None) is None:
        raise ValueError(
            f"{model.name}: has no colour prior, which --reference needs (an ONNX file exported by an older colorunet: "
            "export it again with 'colorunet export')"
        )


def reference_bias_for(model: Backend, reference, strength: float = DEFAULT_STRENGTH) -> np.ndarray:
    """The (n,) logit bias that makes ``model`` colour like ``reference`` (a photo, or its bytes; ``reference.py``)."""
    check_reference_options(model)
    return reference_bias(reference, model.centers, model.prior, model.color_space, strength)


def _as_array(scores: Any) -> np.ndarray:
    if not isinstance(scores, np.ndarray) and hasattr(scores, "detach"):  # a PyTorch tensor
        scores = scores.detach().cpu().numpy()
    return np.asarray(scores, dtype=np.float32)


def _propagate(pred: Prediction, scores: np.ndarray, uv_small: np.ndarray, refine: bool, hints: Hints | None) -> np.ndarray:
    """Confidence-seeded and/or hint-driven propagation of the (2, h, w) chroma (``refine.py``)."""
    from .refine import confident_seeds, rasterize_hints, refine_chroma

    small = pred.small_luma
    seeds = None
    if refine:
        p = softmax(scores)[0]  # (n, h, w)
        seeds = confident_seeds(p.max(axis=0), p.argmax(axis=0), scores.shape[1])  # (h, w)
    mask = hint_uv = None
    if hints:
        mask, hint_uv = rasterize_hints(hints, pred.luma.shape, small.shape)
    if seeds is None and mask is None:
        return uv_small
    uv = refine_chroma(small, np.moveaxis(uv_small, 0, -1), seeds, mask, hint_uv)
    return np.moveaxis(np.asarray(uv, dtype=np.float32), -1, 0)  # (2, h, w)


def colorize_full(
    image: ImageLike,
    model: ModelLike = None,
    temperature: float | None = None,
    mode: str = "annealed",
    working_size: int = DEFAULT_WORKING_SIZE,
    confidence: bool = False,
    refine: bool = False,
    hints: Hints | dict | list | None = None,
    reference: ImageLike | bytes | None = None,
    reference_strength: float | None = None,
    bias: np.ndarray | None = None,
) -> Colorization:
    """Colorize a photo; see ``colorize``. Also returns confidence maps if asked.

    ``bias``: a reference's logit bias computed once (``reference_bias_for``), for many photos."""
    m = get_model(model)
    check_decode_options(mode, m.temperature if temperature is None else temperature)  # before any work
    if refine or hints:
        check_refine_options(m, refine)
    if hints is not None and not isinstance(hints, Hints):
        from .refine import parse_hints

        hints = parse_hints(hints)
    strength = strength_for(reference, reference_strength)
    if reference is not None:
        if bias is not None:
            raise ValueError("give a reference or its bias, not both")
        bias = reference_bias_for(m, reference, strength)
    return render(predict(image, m, working_size), temperature, mode, confidence, refine, hints, bias)


def colorize(
    image: ImageLike,
    model: ModelLike = None,
    temperature: float | None = None,
    mode: str = "annealed",
    working_size: int = DEFAULT_WORKING_SIZE,
    refine: bool = False,
    hints: Hints | dict | list | None = None,
    reference: ImageLike | bytes | None = None,
    reference_strength: float | None = None,
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
        reference: a colour photo whose palette to follow (a path, image, array or
            the file's bytes): each pixel's class distribution is re-weighted by
            (h_ref / P̂)^strength before decoding (``reference.py``).
        reference_strength: γ of that re-weighting, 0 to 4 (None: 1, the full ratio); only with
            ``reference``.
    Returns:
        An RGB PIL image (RGBA if the input had alpha) of the input's size, whose
        luma equals the input's within rounding.
    """
    return colorize_full(
        image,
        model,
        temperature,
        mode,
        working_size,
        refine=refine,
        hints=hints,
        reference=reference,
        reference_strength=reference_strength,
    ).image


def default_sample() -> Path:
    """The black-and-white photo shipped with the package (scikit-image's "camera", CC0)."""
    return Path(__file__).parents[1] / "assets" / "samples" / "camera.png"
