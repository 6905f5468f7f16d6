"""Colour maths: RGB <-> YUV (BT.601) as pure functions.

ColorUNet (arXiv 1811.03120) works in YUV: the network sees the luma Y and
predicts the chroma (U, V). These functions take NumPy arrays or PyTorch tensors
alike (anything with ``@`` and ``moveaxis``), with the three colour channels on
``channel_axis``. RGB is in [0, 1]; Y is in [0, 1], U in [-U_MAX, U_MAX] and
V in [-V_MAX, V_MAX]. The matrix is the analogue-YUV one that scikit-image's
``rgb2yuv`` uses, which the tests take as the oracle.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# BT.601 luma weights.
W_R, W_G, W_B = 0.299, 0.587, 0.114
# Extent of the chroma axes for RGB in [0, 1]: U = 0.492 (B - Y), V = 0.877 (R - Y).
U_MAX = 0.436
V_MAX = 0.615

#: Rows give Y, U, V from (R, G, B).
YUV_FROM_RGB = np.array(
    [
        [W_R, W_G, W_B],
        [-0.14714119, -0.28886916, 0.43601035],
        [0.61497538, -0.51496512, -0.10001026],
    ]
)
#: Rows give R, G, B from (Y, U, V).
RGB_FROM_YUV = np.linalg.inv(YUV_FROM_RGB)


def _apply_matrix(x: Any, matrix: np.ndarray, channel_axis: int) -> Any:
    if x.shape[channel_axis] != 3:
        raise ValueError(f"expected 3 channels on axis {channel_axis}, got shape {tuple(x.shape)}")
    last = x.moveaxis(channel_axis, -1) if hasattr(x, "moveaxis") else np.moveaxis(x, channel_axis, -1)
    if isinstance(x, np.ndarray):
        out = last @ matrix.T.astype(np.result_type(x.dtype, np.float32), copy=False)
        return np.moveaxis(out, -1, channel_axis)
    import torch  # only reached with a tensor, so torch is already imported

    m = torch.as_tensor(matrix.T, dtype=x.dtype, device=x.device)
    return (last @ m).moveaxis(-1, channel_axis)


def rgb_to_yuv(rgb: Any, channel_axis: int = -1) -> Any:
    """RGB in [0, 1] -> YUV (Y in [0, 1], U in ±U_MAX, V in ±V_MAX)."""
    return _apply_matrix(rgb, YUV_FROM_RGB, channel_axis)


def yuv_to_rgb(yuv: Any, channel_axis: int = -1) -> Any:
    """YUV -> RGB. No clipping: out-of-gamut chroma gives values outside [0, 1]."""
    return _apply_matrix(yuv, RGB_FROM_YUV, channel_axis)


def rgb_to_luma(rgb: Any, channel_axis: int = -1) -> Any:
    """Y only, without computing U and V (the input of the network)."""
    if isinstance(rgb, np.ndarray):
        r, g, b = np.moveaxis(rgb, channel_axis, 0)
    else:
        r, g, b = rgb.moveaxis(channel_axis, 0)
    return W_R * r + W_G * g + W_B * b


def luma_chroma_to_rgb(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Recombine luma with predicted chroma into an RGB image in [0, 1], keeping Y exact.

    Why not just clip: a vivid chroma on a very dark or very bright pixel lands
    outside the RGB cube, and clipping each channel changes the pixel's luma, so the
    output would no longer carry the photo's own brightness (the one thing we know
    is right). Instead each pixel's chroma is scaled towards grey by the largest
    factor s in [0, 1] that keeps R, G and B inside [0, 1]: the hue is kept, the
    saturation is reduced only where the gamut forces it, and Y is untouched since
    every row of RGB_FROM_YUV has a Y coefficient of 1.

    Args:
        y: (H, W) luma in [0, 1].
        u, v: (H, W) chroma.
    Returns:
        (H, W, 3) float32 RGB in [0, 1].
    """
    y = np.asarray(y, dtype=np.float32)
    m = RGB_FROM_YUV.astype(np.float32)
    # Chroma offset of each RGB channel: (3, H, W).
    d = m[:, 1, None, None] * u[None] + m[:, 2, None, None] * v[None]
    with np.errstate(divide="ignore", invalid="ignore"):
        up = np.where(d > 0, (1.0 - y)[None] / d, np.inf)
        down = np.where(d < 0, y[None] / -d, np.inf)
    s = np.clip(np.minimum(up, down).min(axis=0), 0.0, 1.0)
    rgb = y[None] + s[None] * d
    # Rounding error only; the scaling already keeps values in range.
    return np.clip(np.moveaxis(rgb, 0, -1), 0.0, 1.0)


# --- CIE Lab (D65), for evaluation: Zhang et al. measure colour error in Lab ab ---

#: sRGB (linear) -> XYZ, D65 white (IEC 61966-2-1).
XYZ_FROM_LINEAR_RGB = np.array(
    [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ]
)
#: D65 reference white (2° observer), the one scikit-image's ``rgb2lab`` uses by default.
D65_WHITE = np.array([0.95047, 1.0, 1.08883])


def srgb_to_linear(rgb: np.ndarray) -> np.ndarray:
    """Undo the sRGB transfer curve (RGB in [0, 1])."""
    rgb = np.asarray(rgb, dtype=np.float64)
    return np.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)


def _lab_f(t: np.ndarray) -> np.ndarray:
    """CIE's f(t): the cube root, with a linear piece near black."""
    eps = (6 / 29) ** 3
    return np.where(t > eps, np.cbrt(t), t / (3 * (6 / 29) ** 2) + 4 / 29)


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB in [0, 1], (..., 3) -> CIE Lab (L in [0, 100], a and b roughly ±110)."""
    f = _lab_f(srgb_to_linear(rgb) @ XYZ_FROM_LINEAR_RGB.T / D65_WHITE)
    L = 116 * f[..., 1] - 16
    a = 500 * (f[..., 0] - f[..., 1])
    b = 200 * (f[..., 1] - f[..., 2])
    return np.stack([L, a, b], axis=-1)


def lab_to_linear_rgb(lab: np.ndarray) -> np.ndarray:
    """CIE Lab (D65) -> linear sRGB, (..., 3), unclipped: outside [0, 1] means outside the sRGB gamut."""
    lab = np.asarray(lab, dtype=np.float64)
    fy = (lab[..., 0] + 16) / 116
    f = np.stack([fy + lab[..., 1] / 500, fy, fy - lab[..., 2] / 200], axis=-1)
    delta = 6 / 29
    xyz = np.where(f > delta, f**3, 3 * delta**2 * (f - 4 / 29)) * D65_WHITE
    return xyz @ np.linalg.inv(XYZ_FROM_LINEAR_RGB).T


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """CIE Lab (D65) -> sRGB in [0, 1], (..., 3); colours outside the sRGB gamut are clipped (as Zhang et al. do)."""
    linear = np.clip(lab_to_linear_rgb(lab), 0, 1)
    return np.where(linear > 0.0031308, 1.055 * linear ** (1 / 2.4) - 0.055, 12.92 * linear)


def lightness(rgb: np.ndarray) -> np.ndarray:
    """CIE L* / 100 in [0, 1]: the grey input of a Lab model, as luma is a YUV model's."""
    y = srgb_to_linear(rgb) @ XYZ_FROM_LINEAR_RGB[1]
    return ((116 * _lab_f(y) - 16) / 100).astype(np.float32)


# --- a model's colour space: what it sees (lightness) and what it predicts (chroma) ---------------------

#: "yuv": luma Y and chroma UV (ColorUNet); "lab": L*/100 and ab (Zhang et al.).
COLOR_SPACES = ("yuv", "lab")


def to_lightness_chroma(rgb: np.ndarray, space: str = "yuv") -> tuple[np.ndarray, np.ndarray]:
    """sRGB in [0, 1], (H, W, 3) -> lightness (H, W) in [0, 1] and chroma (H, W, 2), float32."""
    if space == "yuv":
        yuv = rgb_to_yuv(rgb)
        return yuv[..., 0], yuv[..., 1:]
    if space == "lab":
        lab = rgb_to_lab(rgb)
        return (lab[..., 0] / 100).astype(np.float32), lab[..., 1:].astype(np.float32)
    raise ValueError(f"unknown colour space {space!r}; known: {', '.join(COLOR_SPACES)}")


def lightness_of(rgb: np.ndarray, space: str = "yuv") -> np.ndarray:
    """Only the lightness (the network's input): luma for "yuv", L*/100 for "lab"."""
    return rgb_to_luma(rgb) if space == "yuv" else lightness(rgb)


def from_lightness_chroma(light: np.ndarray, c1: np.ndarray, c2: np.ndarray, space: str = "yuv") -> np.ndarray:
    """Lightness and chroma back to sRGB in [0, 1] (the inverse of ``to_lightness_chroma``).

    YUV keeps the luma exactly (``luma_chroma_to_rgb``); Lab converts and clips
    to the sRGB gamut, as Zhang et al. do.
    """
    if space == "yuv":
        return luma_chroma_to_rgb(light, c1, c2)
    return lab_to_rgb(np.stack([np.asarray(light, np.float64) * 100, c1, c2], axis=-1)).astype(np.float32)


#: A photo whose 99th-percentile chroma magnitude is below this is treated as grey
#: (≈ 5 levels of 255): learning from it would teach the network that grey is right.
GRAY_CHROMA_THRESHOLD = 0.02


def is_grayscale(rgb: np.ndarray) -> bool:
    """True for photos with (almost) no chroma: true greyscale, or colour files of a B/W photo."""
    yuv = rgb_to_yuv(rgb.astype(np.float32) / 255.0 if rgb.dtype == np.uint8 else rgb)
    chroma = np.hypot(yuv[..., 1], yuv[..., 2])
    return float(np.percentile(chroma, 99)) < GRAY_CHROMA_THRESHOLD
