"""Colorization metrics: the numbers that stand in for the paper's words.

- Accuracy curve and AuC (Zhang et al. §3.1): the share of pixels whose Lab ab
  error is within t, for t = 0…150, and the mean of that curve (in %). The
  class-rebalanced variant weights each pixel by the inverse frequency of its
  true ab bin (a grid of 10 over ab) over the whole evaluation set, so rare,
  saturated colours count as much as common, dull ones.
- PSNR over RGB, SSIM (scikit-image, over the three channels).
- Colourfulness (Hasler & Süsstrunk 2003): σ_rgyb + 0.3·μ_rgyb on 0–255 RGB;
  ~0 for grey, ~15 "slightly", ~33 "moderately", ~59 "quite", ~82+ "highly" colourful.
"""

from __future__ import annotations

import numpy as np

from .color import rgb_to_lab

#: Thresholds of the accuracy curve, in Lab ab units (Zhang et al.: 0 to 150).
AUC_THRESHOLDS = np.arange(0, 151)
#: ab bins for rebalancing: a grid of 10 Lab units over ab ∈ [−110, 110).
AB_GRID = 10
AB_RANGE = 110
_AB_BINS = 2 * AB_RANGE // AB_GRID


def ab_bins(ab: np.ndarray) -> np.ndarray:
    """Flat ab-grid bin of each (..., 2) ab value."""
    idx = np.clip(np.floor((ab + AB_RANGE) / AB_GRID), 0, _AB_BINS - 1).astype(np.int64)
    return idx[..., 0] * _AB_BINS + idx[..., 1]


class AccuracyCurve:
    """Accumulates, per true ab bin, how many pixels have an ab error within each threshold."""

    def __init__(self) -> None:
        n_t = len(AUC_THRESHOLDS)
        # counts[bin, k]: pixels of that bin whose error e has ceil(e) == k (k = n_t: beyond 150)
        self.counts = np.zeros((_AB_BINS * _AB_BINS, n_t + 1), dtype=np.int64)

    def add(self, pred_rgb: np.ndarray, true_rgb: np.ndarray) -> np.ndarray:
        """Add one image pair (RGB in [0, 1], (H, W, 3)); returns its per-pixel ab error."""
        pred_ab = rgb_to_lab(pred_rgb)[..., 1:]
        true_ab = rgb_to_lab(true_rgb)[..., 1:]
        err = np.hypot(*(pred_ab - true_ab).transpose(2, 0, 1))
        # e <= t  <=>  ceil(e) <= t for whole t
        k = np.minimum(np.ceil(err - 1e-9), len(AUC_THRESHOLDS)).astype(np.int64)
        np.add.at(self.counts, (ab_bins(true_ab).ravel(), k.ravel()), 1)
        return err

    def curve(self, rebalanced: bool = False) -> np.ndarray:
        """(151,) share of pixels with error ≤ t for each threshold t."""
        within = np.cumsum(self.counts, axis=1)[:, : len(AUC_THRESHOLDS)]  # (bins, T)
        totals = self.counts.sum(axis=1)
        if not rebalanced:
            return within.sum(0) / max(totals.sum(), 1)
        used = totals > 0
        # each occupied bin counts equally: pixel weight ∝ 1 / frequency of its bin
        return (within[used] / totals[used, None]).mean(0)

    def auc(self, rebalanced: bool = False) -> float:
        """Area under the curve, as a percentage."""
        return float(100 * self.curve(rebalanced).mean())


def psnr(pred_rgb: np.ndarray, true_rgb: np.ndarray) -> float:
    """Peak signal-to-noise ratio over RGB in [0, 1], in dB (inf for identical images)."""
    mse = float(np.mean((np.asarray(pred_rgb, np.float64) - np.asarray(true_rgb, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def ssim(pred_rgb: np.ndarray, true_rgb: np.ndarray) -> float:
    """Structural similarity over RGB in [0, 1] (scikit-image, 7×7 windows, mean over channels)."""
    try:
        from skimage.metrics import structural_similarity
    except ImportError:
        from .errors import ColorunetError

        raise ColorunetError("SSIM needs the 'eval' extra: pip install 'colorunet[eval]'") from None

    h, w = pred_rgb.shape[:2]
    win = min(7, h, w)
    win -= 1 - win % 2  # odd
    if win < 3:
        return float("nan")
    return float(structural_similarity(pred_rgb, true_rgb, channel_axis=-1, data_range=1.0, win_size=win))


#: Stain measure: a pixel is stained when its chroma is further than STAIN_CHROMA from
#: the median chroma of the pixels of similar luminance (|ΔY| < STAIN_LUMA) around it
#: (a 9×9 window, on the photo scaled to a short side of STAIN_SIZE).
STAIN_CHROMA = 0.04
STAIN_LUMA = 0.05
STAIN_RADIUS = 4
STAIN_SIZE = 128


def stain_fraction(rgb: np.ndarray) -> float:
    """Share of pixels whose colour disagrees with their luminance-similar neighbourhood.

    The blotches a per-pixel classifier leaves (a patch of blue on grey trousers)
    are pixels whose chroma differs from that of neighbours that look the same in
    grey; a well-propagated colouring has few of them.
    """
    from PIL import Image

    from .color import rgb_to_yuv

    img = Image.fromarray(np.clip(np.asarray(rgb) * 255 + 0.5, 0, 255).astype(np.uint8))
    s = STAIN_SIZE / min(img.size)
    if s < 1:
        img = img.resize((max(1, round(img.width * s)), max(1, round(img.height * s))), Image.Resampling.BOX)
    yuv = rgb_to_yuv(np.asarray(img, dtype=np.float64) / 255)
    r = STAIN_RADIUS
    pad = np.pad(yuv, ((r, r), (r, r), (0, 0)), mode="edge")
    win = np.lib.stride_tricks.sliding_window_view(pad, (2 * r + 1, 2 * r + 1), axis=(0, 1))  # (h, w, 3, k, k)
    win = win.reshape(*yuv.shape[:2], 3, -1)
    similar = np.abs(win[:, :, 0] - yuv[..., :1]) < STAIN_LUMA  # (h, w, k²), the pixel itself included
    med_u = np.nanmedian(np.where(similar, win[:, :, 1], np.nan), axis=-1)
    med_v = np.nanmedian(np.where(similar, win[:, :, 2], np.nan), axis=-1)
    off = np.hypot(yuv[..., 1] - med_u, yuv[..., 2] - med_v)
    return float((off > STAIN_CHROMA).mean())


def colorfulness(rgb: np.ndarray) -> float:
    """Hasler & Süsstrunk's colourfulness M of an RGB image in [0, 1]."""
    rgb = np.asarray(rgb, np.float64) * 255
    rg = rgb[..., 0] - rgb[..., 1]
    yb = 0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2]
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))
