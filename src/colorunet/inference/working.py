"""The photo side of colorizing, shared by every backend: no PyTorch here.

Reading a photo's luma, the working size the network runs at, the upsampling
and recombination at full resolution, and the result type. ``pipeline`` builds
on it for every backend (PyTorch or ONNX Runtime), so all treat a photo the same way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Union

import numpy as np
from PIL import Image

from ..core.color import from_lightness_chroma, lightness_of
from ..core.images import ImageError, float_rgb, open_image, pad_to_multiple, stored_pixels, to_uint8  # noqa: F401 (pad_to_multiple: re-exported)

#: Short side (pixels) at which the network runs; larger photos are scaled down for it.
DEFAULT_WORKING_SIZE = 256
#: The working image has at most this many times working_size² pixels. The short
#: side alone does not bound the work: a 4000×250 strip is never scaled down by it,
#: and refining its million pixels took gigabytes and many seconds (measured in
#: benchmarks/results/notes_from_code.md). Photos up to 2:1 (3:2, 16:9) are not affected;
#: longer strips run at a lower resolution.
MAX_WORKING_AREA = 2

ImageLike = Union[Image.Image, np.ndarray, str, os.PathLike]


@dataclass
class Colorization:
    """A colorized photo and, when asked for, the paper's confidence maps.

    Attributes:
        image: RGB (or RGBA, when the input had alpha) PIL image, the input's size.
        confidence_top: (H, W) float32 probability of the most likely class, or None.
        confidence_margin: (H, W) float32 1 − p₂/p₁, or None.
        notes: things the user should know (e.g. only the first frame of an animation was used).
    """

    image: Image.Image
    confidence_top: np.ndarray | None = None
    confidence_margin: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)


def as_image(image: ImageLike) -> Image.Image:
    if isinstance(image, Image.Image):
        return image
    if isinstance(image, np.ndarray):
        return array_image(image)
    return open_image(image)


def array_image(a: np.ndarray) -> Image.Image:
    """An (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) array as an image, its range read from its type.

    uint8 is 0–255, uint16 0–65535, bool black and white, floats [0, 1]; other
    integer types must hold 0–255. Anything else (NaN, floats outside [0, 1], an
    odd shape) is refused with ``ImageError`` rather than clipped into a white or
    black picture.
    """
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)) or 0 in a.shape:
        raise ImageError(f"array of shape {a.shape}: expected (H, W), (H, W, 3) or (H, W, 4)")
    if a.dtype == np.uint8:
        return Image.fromarray(a)
    if a.dtype == np.bool_:
        return Image.fromarray(a.astype(np.uint8) * 255)
    if np.issubdtype(a.dtype, np.floating) or a.dtype == np.uint16:
        peak = 65535.0 if a.dtype == np.uint16 else 1.0
        f = np.asarray(a, dtype=np.float64) / peak
        if not np.isfinite(f).all():
            raise ImageError(f"{a.dtype} array: holds NaN or infinite values")
        if f.min() < 0 or f.max() > 1:
            raise ImageError(f"{a.dtype} array: values from {float(a.min()):g} to {float(a.max()):g}; a float image must be in "
                             "[0, 1]")
        if a.ndim == 2:
            return Image.fromarray(f.astype(np.float32), mode="F")  # keeps the precision (stored_pixels)
        return Image.fromarray(to_uint8(f))
    if np.issubdtype(a.dtype, np.integer) and a.min() >= 0 and a.max() <= 255:
        return Image.fromarray(a.astype(np.uint8))
    raise ImageError(f"{a.dtype} array: expected uint8 (0–255), uint16 (0–65535) or floats in [0, 1]")


def working_shape(height: int, width: int, working_size: int) -> tuple[int, int]:
    """Size the network sees: short side ``working_size`` (never upscaled), and at most
    ``MAX_WORKING_AREA`` × working_size² pixels, which bounds every step after it
    (network, decoding, refinement, video smoothing) whatever the photo's shape."""
    if working_size < 8:
        raise ValueError(f"working size must be at least 8 pixels, got {working_size}")
    area_scale = (MAX_WORKING_AREA * working_size**2 / (height * width)) ** 0.5
    scale = min(1.0, working_size / min(height, width), area_scale)
    h, w = max(1, round(height * scale)), max(1, round(width * scale))
    if h * w > MAX_WORKING_AREA * working_size**2:  # rounding up went over the bound
        h, w = max(1, int(height * scale)), max(1, int(width * scale))
    return h, w


def working_luma(y: np.ndarray, working_size: int = DEFAULT_WORKING_SIZE) -> np.ndarray:
    """The luma the network sees: (h, w) float32, short side ``working_size`` (Lanczos), never upscaled."""
    h, w = working_shape(*y.shape, working_size)
    if (h, w) == y.shape:
        return np.array(y, dtype=np.float32)
    return np.array(Image.fromarray(np.asarray(y, dtype=np.float32)).resize((w, h), Image.Resampling.LANCZOS), dtype=np.float32)


#: Full-resolution conversions go a block of rows at a time, about this many
#: pixels per block: whole-photo float32 temporaries cost a dozen full-size
#: planes for the recombination alone. Blocks this small also keep the
#: temporaries in the CPU's cache, which made recombination about twice as fast
#: as with 1M-pixel blocks (measurements: benchmarks/results/notes_from_code.md).
BLOCK_PIXELS = 1 << 16


def row_blocks(height: int, width: int) -> list[slice]:
    """Slices of consecutive rows, about ``BLOCK_PIXELS`` pixels each, covering ``height`` rows."""
    step = max(1, BLOCK_PIXELS // max(width, 1))
    return [slice(r, min(r + step, height)) for r in range(0, height, step)]


def read_luma(image: ImageLike, space: str = "yuv") -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """Step 1: the photo's own luma (L*/100 for a Lab model), kept exactly. Returns (H, W) float32, alpha or None, notes."""
    img = as_image(image)
    notes = []
    if img.info.get("frames", 1) > 1:
        notes.append(f"animated ({img.info['frames']} frames): the first frame was colorized")
    pixels, alpha = stored_pixels(img)
    del img  # the decoded photo is no longer needed once its pixels are in an array
    luma = np.empty(pixels.shape[:2], dtype=np.float32)
    for rows in row_blocks(*luma.shape):
        luma[rows] = lightness_of(float_rgb(pixels[rows]), space)
    return luma, alpha, notes


def recombine(luma: np.ndarray, u: np.ndarray, v: np.ndarray, alpha: np.ndarray | None, space: str = "yuv") -> Image.Image:
    """Step 4: full-resolution chroma with the original luma (and alpha) into an 8-bit image."""
    h, w = luma.shape
    out = np.empty((h, w, 3 if alpha is None else 4), dtype=np.uint8)
    for rows in row_blocks(h, w):
        out[rows, :, :3] = to_uint8(from_lightness_chroma(luma[rows], u[rows], v[rows], space))
    if alpha is not None:
        out[..., 3] = alpha
    return Image.fromarray(out)


def confidence_image(conf: np.ndarray) -> Image.Image:
    """A confidence map in [0, 1] as an 8-bit greyscale image (white = confident)."""
    return Image.fromarray(to_uint8(conf))


def upsample(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(C, h, w) → (C, H, W) float32, bilinear on pixel centres (PyTorch's ``align_corners=False``):
    the working-size chroma or confidence brought to the photo's size (step 4)."""
    H, W = size
    if maps.shape[1:] == (H, W):
        return np.asarray(maps, dtype=np.float32)
    return np.stack([np.asarray(Image.fromarray(c.astype(np.float32)).resize((W, H), Image.Resampling.BILINEAR)) for c in maps])
