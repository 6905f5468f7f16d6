"""Colorization metrics: the numbers that stand in for the paper's words.

- Accuracy curve and AuC (Zhang et al. §3.1): the share of pixels whose Lab ab
  error is within t, for t = 0…150, and the mean of that curve (in %).
- Class-rebalanced AuC (Zhang et al. §3.1, "re-weighting the pixels inversely
  by the prior probability of their class"): each pixel is weighted by
  1 / max(P̃(b), PRIOR_FLOOR), where b is the cell of its *true* ab on Zhang et
  al.'s grid (cells of 10 centred on multiples of 10, ``quantize.LAB_GRID_SIZE``²
  cells) and P̃ a fixed prior shipped with the code (``assets/eval_ab_prior.npy``:
  the ab histogram of the open pool's training photos, smoothed with a Gaussian
  of σ = 5 ab units as Zhang et al. smooth theirs). Fixed weights make the number
  comparable across evaluation sets and models; weights taken from the evaluation
  photos themselves would let a one-pixel cell weigh as much as the sky.
- PSNR over RGB, SSIM (scikit-image, over the three channels).
- Colourfulness (Hasler & Süsstrunk 2003): σ_rgyb + 0.3·μ_rgyb on 0–255 RGB;
  ~0 for grey, ~15 "slightly", ~33 "moderately", ~59 "quite", ~82+ "highly" colourful.
- Invented colour (``false_color``): among the pixels whose true colour is
  neutral (|ab| < NEUTRAL_AB), the share painted vivid (|ab| > VIVID_AB): the
  blotches of blue and red a user sees on grey walls, metal and overcast skies.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from ..core.color import rgb_to_lab
from ..core.quantize import LAB_GRID_SIZE, cell_index, cell_size, smooth_grid

#: Thresholds of the accuracy curve, in Lab ab units (Zhang et al.: 0 to 150).
AUC_THRESHOLDS = np.arange(0, 151)
#: Cells of the rebalancing grid: Zhang et al.'s ab grid, 10 units, centred on multiples of 10.
AB_CELLS = LAB_GRID_SIZE * LAB_GRID_SIZE
#: Smoothing of the evaluation prior, in ab units (Zhang et al. §2.2: σ = 5).
PRIOR_SIGMA_AB = 5.0
#: A cell rarer than this counts as this rare: one pixel of a colour the prior never
#: saw would otherwise outweigh whole photos.
PRIOR_FLOOR = 1e-4
#: The shipped evaluation prior (``scripts/make_eval_prior.py``).
EVAL_PRIOR_PATH = Path(__file__).parents[1] / "assets" / "eval_ab_prior.npy"
#: Invented colour: a pixel is truly neutral below NEUTRAL_AB, painted vivid above VIVID_AB
#: (Lab |ab|); photos with fewer than MIN_NEUTRAL_SHARE neutral pixels have no score.
NEUTRAL_AB = 6.0
VIVID_AB = 20.0
MIN_NEUTRAL_SHARE = 0.01


def ab_bins(ab: np.ndarray) -> np.ndarray:
    """Flat cell of each (..., 2) ab value on Zhang et al.'s grid (values beyond ±115 go to the border cells)."""
    ab = np.asarray(ab, np.float64)
    return cell_index(np.asarray(ab[..., 0]), np.asarray(ab[..., 1]), LAB_GRID_SIZE, "lab")


def ab_prior(histogram: np.ndarray) -> np.ndarray:
    """(AB_CELLS,) smoothed, normalised prior from raw per-cell pixel counts (Zhang et al. §2.2)."""
    sigma_cells = PRIOR_SIGMA_AB / cell_size(LAB_GRID_SIZE, "lab")[0]  # 5 ab units = half a cell of 10
    return smooth_grid(np.asarray(histogram, np.float64), LAB_GRID_SIZE, sigma_cells)


@lru_cache(maxsize=1)
def eval_prior() -> np.ndarray:
    """The shipped evaluation prior P̃ over the ab grid; sums to 1."""
    prior = np.load(EVAL_PRIOR_PATH)
    if prior.shape != (AB_CELLS,) or not np.isfinite(prior).all() or prior.min() < 0:
        raise ValueError(f"{EVAL_PRIOR_PATH}: not a prior over {AB_CELLS} ab cells")
    return prior / prior.sum()


def rebalancing_weights(prior: np.ndarray) -> np.ndarray:
    """(AB_CELLS,) pixel weight of each true-ab cell: 1 / max(P̃(b), PRIOR_FLOOR)."""
    return 1.0 / np.maximum(prior, PRIOR_FLOOR)


def error_bins(err: np.ndarray) -> np.ndarray:
    """The first threshold each error is within: ceil(e), or len(AUC_THRESHOLDS) beyond the last."""
    # e <= t  <=>  ceil(e) <= t for whole t
    return np.minimum(np.ceil(np.ravel(err) - 1e-9), len(AUC_THRESHOLDS)).astype(np.int64)


class AccuracyCurve:
    """Accumulates, per true ab cell, how many pixels have an ab error within each threshold.

    Pixels are pooled over every photo added: a photo weighs by its pixel count
    (``evaluate`` scores every photo at the same short side, so about equally).
    """

    def __init__(self, prior: np.ndarray | None = None) -> None:
        n_t = len(AUC_THRESHOLDS)
        # counts[cell, k]: pixels of that cell whose error e has ceil(e) == k (k = n_t: beyond 150)
        self.counts = np.zeros((AB_CELLS, n_t + 1), dtype=np.int64)
        self.prior = eval_prior() if prior is None else np.asarray(prior, np.float64)

    def add(self, pred_rgb: np.ndarray, true_rgb: np.ndarray) -> np.ndarray:
        """Add one image pair (RGB in [0, 1], (H, W, 3)); returns its per-pixel ab error."""
        return self.add_ab(rgb_to_lab(pred_rgb)[..., 1:], rgb_to_lab(true_rgb)[..., 1:])

    def add_ab(self, pred_ab: np.ndarray, true_ab: np.ndarray) -> np.ndarray:
        """Add one pair of (H, W, 2) ab images; returns the per-pixel ab error."""
        err = np.hypot(pred_ab[..., 0] - true_ab[..., 0], pred_ab[..., 1] - true_ab[..., 1])
        cells = ab_bins(true_ab).ravel() * self.counts.shape[1] + error_bins(err)
        self.counts += np.bincount(cells, minlength=self.counts.size).reshape(self.counts.shape)
        return err

    def curve(self, rebalanced: bool = False) -> np.ndarray:
        """(151,) share of pixels with error ≤ t for each threshold t (weighted, if rebalanced)."""
        within = np.cumsum(self.counts, axis=1)[:, : len(AUC_THRESHOLDS)]  # (cells, T)
        totals = self.counts.sum(axis=1)
        w = rebalancing_weights(self.prior) if rebalanced else np.ones(AB_CELLS)
        return (w @ within) / max(float(w @ totals), 1e-300)

    def auc(self, rebalanced: bool = False) -> float:
        """Area under the curve, as a percentage."""
        return float(100 * self.curve(rebalanced).mean())


def auc_of_errors(err: np.ndarray) -> float:
    """Plain AuC (%) of one set of per-pixel ab errors."""
    within = np.cumsum(np.bincount(error_bins(err), minlength=len(AUC_THRESHOLDS) + 1))[: len(AUC_THRESHOLDS)]
    return float(100 * (within / max(np.size(err), 1)).mean())


def false_color(pred_ab: np.ndarray, true_ab: np.ndarray) -> float:
    """Invented colour, in %: the share of truly neutral pixels (|ab| < NEUTRAL_AB) painted vivid (|ab| > VIVID_AB).

    NaN when fewer than MIN_NEUTRAL_SHARE of the photo's pixels are neutral (nothing to judge).
    """
    neutral = np.hypot(true_ab[..., 0], true_ab[..., 1]) < NEUTRAL_AB
    if neutral.mean() < MIN_NEUTRAL_SHARE:
        return float("nan")
    vivid = np.hypot(pred_ab[..., 0], pred_ab[..., 1]) > VIVID_AB
    return float(100 * vivid[neutral].mean())


#: The old name, kept for code that imports it (deprecated; use ``false_color``).
false_colour = false_color


def psnr(pred_rgb: np.ndarray, true_rgb: np.ndarray) -> float:
    """Peak signal-to-noise ratio over RGB in [0, 1], in dB (inf for identical images)."""
    mse = float(np.mean((np.asarray(pred_rgb, np.float64) - np.asarray(true_rgb, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def ssim(pred_rgb: np.ndarray, true_rgb: np.ndarray) -> float:
    """Structural similarity over RGB in [0, 1] (scikit-image, 7×7 windows, mean over channels)."""
    try:
        from skimage.metrics import structural_similarity
    except ImportError:
        from ..core.errors import ColorunetError

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

    from ..core.color import rgb_to_yuv

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
