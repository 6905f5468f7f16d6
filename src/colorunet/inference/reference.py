"""Colour like this photo: steer the predicted colour distribution toward a reference's palette.

The network predicts, for every pixel x, a distribution p(b|x) over the n colour
classes. Training made it lean on the training photos' prior P̂(b): a class is
predicted about as often as it appears there. A reference photo's own class
histogram h_ref(b) says which colours the user wants instead, so each pixel's
distribution is re-weighted by how much more the reference uses a class than the
training photos did:

    p′(b|x) ∝ p(b|x) · (h_ref(b) / P̂(b))^γ

and then decoded as usual (annealed mean, mean or mode). γ (``--reference-strength``)
is 0 for no effect and 1 for the full ratio; larger values push harder. In
log-space the re-weighting is a per-class bias added to the network's logits,
γ·(log h_ref − log P̂), so it costs nothing and needs no training. It works only
because colour is a distribution over classes: a regression model, which predicts
one chroma per pixel, has nothing to re-weight.

Everything here is NumPy: the ONNX backend uses it without PyTorch.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from ..core.color import is_grayscale, to_lightness_chroma
from ..core.images import ImageError
from ..core.quantize import GRID_SIZE, LAB_GRID_SIZE, cell_size
from ..core.values import check_number

#: γ when the user gives a reference without a strength.
DEFAULT_STRENGTH = 1.0
#: Past this the reference's palette overrides the photo entirely (p′ is the
#: reference's classes, whatever the network saw); refused as a likely typo.
MAX_STRENGTH = 4.0
#: The reference is read at this short side at most: a palette does not need megapixels,
#: and the work stays bounded whatever the file's size.
REFERENCE_SIZE = 256
#: Share of the training prior mixed into h_ref: a class the reference lacks is
#: damped by this factor (to the power γ) rather than forbidden, so a pixel whose
#: every likely class is absent from the reference still decodes to something sensible.
PRIOR_MIX = 0.01
#: Each reference pixel's chroma is spread over the classes by a Gaussian of this many
#: grid cells (Zhang et al.'s soft encoding, §2.1, uses 5 ab units: half a cell), so the
#: palette does not hinge on which side of a cell edge a colour fell.
SOFT_SIGMA_CELLS = 0.5


def check_strength(value) -> float:
    return float(check_number(value, "reference strength", 0.0, MAX_STRENGTH))


def strength_for(reference, strength: float | None) -> float:
    """γ to use with ``reference``: ``None`` is DEFAULT_STRENGTH. A strength without a reference
    is refused rather than ignored, as on the command line: the caller meant something by it."""
    if reference is None and strength is not None:
        raise ValueError("reference strength: needs a reference photo")
    return DEFAULT_STRENGTH if strength is None else check_strength(strength)


def reference_pixels(image, name: str = "reference") -> np.ndarray:
    """The reference as (h, w, 3) float32 RGB in [0, 1], its short side at most ``REFERENCE_SIZE``.

    ``image`` is anything ``colorize`` takes (a path, a PIL image, an array, or a file's
    bytes); transparent pixels are left out of the palette.
    """
    from ..core.images import open_image, stored_pixels
    from .working import as_image

    img = open_image(image, name=name) if isinstance(image, bytes) else as_image(image)
    if min(img.size) > REFERENCE_SIZE:  # reduce first: bounded memory, whatever the photo's size
        f = REFERENCE_SIZE / min(img.size)
        img = img.resize((max(1, round(img.width * f)), max(1, round(img.height * f))), Image.Resampling.BOX)
    pixels, alpha = stored_pixels(img)
    if pixels.shape[-1] != 3:
        raise ImageError(f"{name}: a grayscale image has no colors to follow")
    rgb = pixels.reshape(-1, 3).astype(np.float32) / 255.0
    if alpha is not None:
        rgb = rgb[alpha.reshape(-1) > 127]
        if len(rgb) == 0:
            raise ImageError(f"{name}: fully transparent, no colors to follow")
    return rgb


def reference_histogram(rgb: np.ndarray, centers: np.ndarray, space: str = "yuv", name: str = "reference") -> np.ndarray:
    """h_ref: the share of the reference's pixels in each colour class (sums to 1).

    Args:
        rgb: (N, 3) float RGB in [0, 1] (``reference_pixels``).
        centers: (n, 2) chroma each class decodes to (the model's quantiser).
        space: the model's chroma plane, "yuv" or "lab".
    """
    rgb = np.asarray(rgb, np.float32).reshape(-1, 1, 3)
    if is_grayscale(rgb):
        raise ImageError(f"{name}: is grayscale, so it has no colors to follow; give a color photo")
    _, chroma = to_lightness_chroma(rgb, space)
    chroma = chroma.reshape(-1, 2).astype(np.float64)
    du, dv = cell_size(GRID_SIZE if space == "yuv" else LAB_GRID_SIZE, space)
    scale = np.array([du, dv]) * SOFT_SIGMA_CELLS
    centers = np.asarray(centers, np.float64)
    hist = np.zeros(len(centers))
    for start in range(0, len(chroma), 8192):  # (block × n) at a time: bounded memory for Lab's 262 classes
        d2 = ((((chroma[start:start + 8192, None, :] - centers[None]) / scale) ** 2).sum(-1))  # (block, n)
        w = np.exp(-0.5 * (d2 - d2.min(axis=1, keepdims=True)))  # the nearest class always keeps weight 1
        hist += (w / w.sum(axis=1, keepdims=True)).sum(axis=0)
    return hist / hist.sum()


def class_bias(h_ref: np.ndarray, prior: np.ndarray, strength: float = DEFAULT_STRENGTH) -> np.ndarray:
    """γ·(log h′_ref − log P̂) per class: what to add to the logits so that p′ ∝ p·(h′_ref/P̂)^γ.

    h′_ref = (1 − PRIOR_MIX)·h_ref + PRIOR_MIX·P̂, so a class the reference lacks is
    damped by PRIOR_MIX^γ, and a reference that matches the training prior changes nothing.
    """
    strength = check_strength(strength)
    prior = np.asarray(prior, np.float64)
    prior = np.maximum(prior, 1e-12) / np.maximum(prior, 1e-12).sum()
    mixed = (1.0 - PRIOR_MIX) * np.asarray(h_ref, np.float64) + PRIOR_MIX * prior
    return (strength * (np.log(mixed) - np.log(prior))).astype(np.float32)


def reference_bias(image, centers: np.ndarray, prior: np.ndarray, space: str, strength: float = DEFAULT_STRENGTH,
                   name: str | None = None) -> np.ndarray:
    """The (n,) logit bias for a reference photo: ``class_bias`` of its ``reference_histogram``."""
    strength = check_strength(strength)  # before reading the photo
    label = name or (str(image) if isinstance(image, (str,)) or hasattr(image, "__fspath__") else "reference")
    return class_bias(reference_histogram(reference_pixels(image, label), centers, space, label), prior, strength)
