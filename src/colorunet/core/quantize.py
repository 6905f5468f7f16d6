"""The chroma quantiser: colour as a class, as in ColorUNet and Zhang et al. §2.1.

The UV plane (U in ±U_MAX, V in ±V_MAX) is cut into a GRID_SIZE × GRID_SIZE grid.
From a prior P̂ measured on the training photos, the ``n`` most frequent cells are
kept (n = 32 in the paper); every colour maps to the nearest kept cell, measured
from the geometric cell centres. On a regular grid the nearest centre of *all*
cells is the colour's own cell, so a colour in a kept cell always keeps its cell
and only colours of dropped cells move; those move as a whole cell, to the kept
cell whose centre is nearest their cell's centre (an error of at most half a
cell against a per-colour search, for colours that are rare by construction).
That makes the mapping a lookup table of
GRID_SIZE² entries (``cell_to_class``): encoding a pixel costs two divisions and
one table read, which matters because target lookup was a hot spot of training.

Decoding uses a different point per bin: the *mean chroma of the training pixels
assigned to it* (``centers``), not the geometric cell centre. The grid has an
edge at U = 0 and V = 0, so every geometric centre is at least half a cell away
from grey; a photo the network thinks is grey would come out tinted. The class
mean is what an expectation-based decode should use anyway: it is the chroma that
minimises the squared error of the pixels the class stands for.

Everything here is data (``Quantizer`` is a frozen dataclass of arrays) and is
saved with every model, so a model never depends on the photos it was trained on.

The same machinery serves Zhang et al.'s own quantiser, for the eccv16 baseline:
the plane is CIE Lab's ab, cut into cells of 10 centred on multiples of 10
(LAB_GRID_SIZE cells per axis over ±LAB_AB_MAX), and the kept cells are not the
most frequent but all the *in-gamut* ones (``in_gamut_cells``), computed here
rather than shipped as a file: 262 cells by our rule, where Zhang et al. report
Q = 313 (see ``in_gamut_cells``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from .color import U_MAX, V_MAX

#: Cells per axis of the UV grid (ColorUNet: a 10×10 grid over the UV plane).
GRID_SIZE = 10
#: Classes kept in the paper's preset.
PAPER_NUM_CLASSES = 32
#: Zhang et al.'s rebalancing mix (their Eq. 4, λ = 1/2).
DEFAULT_REBALANCE_LAMBDA = 0.5
#: Zhang et al.'s ab grid: cells of 10 centred on multiples of 10, from −110 to 110.
LAB_AB_MAX = 115.0
LAB_GRID_SIZE = 23
#: How many cells ``in_gamut_cells`` keeps on that grid (the eccv16 preset's n; checked by the tests).
LAB_NUM_CLASSES = 262
#: The chroma plane of each colour space: half-widths of its two axes.
CHROMA_RANGE = {"yuv": (U_MAX, V_MAX), "lab": (LAB_AB_MAX, LAB_AB_MAX)}
#: The largest grid a quantiser may have (a model file's arrays are checked against it): 64² cells.
MAX_GRID_SIZE = 64


def _range(space: str) -> tuple[float, float]:
    if space not in CHROMA_RANGE:
        raise ValueError(f"unknown colour space {space!r}; known: {', '.join(CHROMA_RANGE)}")
    return CHROMA_RANGE[space]


def cell_size(grid_size: int = GRID_SIZE, space: str = "yuv") -> tuple[float, float]:
    """Width of one grid cell along each chroma axis (U and V, or a and b)."""
    umax, vmax = _range(space)
    return 2 * umax / grid_size, 2 * vmax / grid_size


def cell_centers(grid_size: int = GRID_SIZE, space: str = "yuv") -> np.ndarray:
    """(grid_size², 2) geometric centres of all cells; flat index = iu * grid_size + iv."""
    umax, vmax = _range(space)
    du, dv = cell_size(grid_size, space)
    cu = -umax + du * (np.arange(grid_size) + 0.5)
    cv = -vmax + dv * (np.arange(grid_size) + 0.5)
    uu, vv = np.meshgrid(cu, cv, indexing="ij")
    return np.stack([uu.ravel(), vv.ravel()], axis=1)


def cell_index(u: Any, v: Any, grid_size: int = GRID_SIZE, space: str = "yuv") -> Any:
    """Flat grid cell of each chroma value (NumPy arrays or torch tensors).

    Values outside the plane's range (possible after noise) fall into the border cells.
    """
    umax, vmax = _range(space)
    du, dv = cell_size(grid_size, space)
    iu = (u + umax) / du
    iv = (v + vmax) / dv
    if isinstance(iu, (np.ndarray, np.generic)):  # arrays, and the NumPy scalars a 0-d array's arithmetic gives
        iu = np.clip(np.floor(iu), 0, grid_size - 1).astype(np.int64)
        iv = np.clip(np.floor(iv), 0, grid_size - 1).astype(np.int64)
    else:
        iu = iu.floor().clamp(0, grid_size - 1).long()
        iv = iv.floor().clamp(0, grid_size - 1).long()
    return iu * grid_size + iv


def smooth_grid(counts: np.ndarray, grid_size: int, sigma_cells: float) -> np.ndarray:
    """A (grid²,) histogram smoothed with a Gaussian of ``sigma_cells`` cells over the 2-D grid, normalised to sum 1.

    Zhang et al. (§2.2) smooth their empirical prior with a Gaussian of σ = 5 ab
    units, half a cell of their grid, so that a colour's weight does not hinge on
    which side of a cell edge its pixels fell. Mass pushed off the grid's border
    is dropped before normalising (the border cells hold no real colour).
    """
    from scipy.ndimage import gaussian_filter

    grid = np.asarray(counts, np.float64).reshape(grid_size, grid_size)
    if sigma_cells > 0:
        grid = gaussian_filter(grid, sigma_cells, mode="constant", truncate=4.0)
    total = grid.sum()
    if not total > 0:
        raise ValueError("cannot normalise an empty histogram")
    return (grid / total).ravel()


@dataclass(frozen=True)
class ChromaHistogram:
    """Pixel counts and chroma sums per grid cell, accumulated over the training photos."""

    counts: np.ndarray  # (grid², ) float64
    sum_u: np.ndarray  # (grid², ) float64
    sum_v: np.ndarray  # (grid², ) float64
    grid_size: int = GRID_SIZE
    space: str = "yuv"

    @classmethod
    def empty(cls, grid_size: int = GRID_SIZE, space: str = "yuv") -> "ChromaHistogram":
        z = np.zeros(grid_size * grid_size)
        return cls(z, z.copy(), z.copy(), grid_size, space)

    @classmethod
    def of(cls, u: np.ndarray, v: np.ndarray, grid_size: int = GRID_SIZE, space: str = "yuv") -> "ChromaHistogram":
        u = np.asarray(u, dtype=np.float64).ravel()
        v = np.asarray(v, dtype=np.float64).ravel()
        cells = cell_index(u, v, grid_size, space)
        size = grid_size * grid_size
        return cls(
            np.bincount(cells, minlength=size).astype(np.float64),
            np.bincount(cells, weights=u, minlength=size),
            np.bincount(cells, weights=v, minlength=size),
            grid_size,
            space,
        )

    def __add__(self, other: "ChromaHistogram") -> "ChromaHistogram":
        if (other.grid_size, other.space) != (self.grid_size, self.space):
            raise ValueError("cannot add histograms of different grids")
        return ChromaHistogram(
            self.counts + other.counts, self.sum_u + other.sum_u, self.sum_v + other.sum_v, self.grid_size, self.space
        )


@dataclass(frozen=True, eq=False)
class Quantizer:
    """Kept cells, their decode chroma and their prior.

    Attributes:
        kept_cells: (n,) flat indices of the kept grid cells, most frequent first.
        centers: (n, 2) chroma (U, V) each class decodes to.
        prior: (n,) P̂(b), the share of training pixels in each class; sums to 1.
        grid_size: cells per axis.
        space: the chroma plane: "yuv" (UV, ColorUNet) or "lab" (ab, Zhang et al.).
    """

    kept_cells: np.ndarray
    centers: np.ndarray
    prior: np.ndarray
    grid_size: int = GRID_SIZE
    space: str = "yuv"

    def __post_init__(self) -> None:
        n = len(self.kept_cells)
        if self.centers.shape != (n, 2) or self.prior.shape != (n,):
            raise ValueError(
                f"quantizer arrays disagree: {n} kept cells, centers {self.centers.shape}, prior {self.prior.shape}"
            )
        if len(set(self.kept_cells.tolist())) != n:
            raise ValueError("quantizer keeps the same cell twice")
        # a model file's quantiser is read through here: check what later steps index and divide by
        if self.space not in CHROMA_RANGE:
            raise ValueError(f"unknown chroma space {self.space!r}")
        if not 1 <= self.grid_size <= MAX_GRID_SIZE:
            raise ValueError(f"grid size must be between 1 and {MAX_GRID_SIZE}, got {self.grid_size}")
        if n == 0 or self.kept_cells.min() < 0 or self.kept_cells.max() >= self.grid_size**2:
            raise ValueError(f"quantizer cells must be between 0 and {self.grid_size**2 - 1} (a {self.grid_size}² grid)")
        if not (np.isfinite(self.centers).all() and np.isfinite(self.prior).all()):
            raise ValueError("quantizer centers or prior hold NaN or infinite values")
        if self.prior.min() < 0 or not abs(float(self.prior.sum()) - 1.0) < 1e-3:
            raise ValueError("quantizer prior must be non-negative and sum to 1")
        if (np.abs(self.centers) > np.array(CHROMA_RANGE[self.space]) * 1.01).any():  # decoded chroma is on the plane
            raise ValueError(f"quantizer centers lie off the {self.space} chroma plane")

    @property
    def num_classes(self) -> int:
        return len(self.kept_cells)

    @classmethod
    def fit(cls, hist: ChromaHistogram, num_classes: int = PAPER_NUM_CLASSES, prior_sigma: float = 0.0) -> "Quantizer":
        """Keep the ``num_classes`` most frequent cells of ``hist`` (ties: lower cell index).

        ``prior_sigma`` > 0 smooths the histogram (``smooth_grid``, σ in cells) before
        the prior is taken from it; the kept cells and decode chroma use the raw counts.
        """
        size = hist.grid_size**2
        if not 1 <= num_classes <= size:
            raise ValueError(f"num_classes must be between 1 and {size}, got {num_classes}")
        if hist.counts.sum() <= 0:
            raise ValueError("cannot fit a quantizer on an empty histogram (no colour pixels)")
        order = np.argsort(-hist.counts, kind="stable")
        return cls._with_cells(hist, order[:num_classes], prior_sigma)

    @classmethod
    def fit_in_gamut(cls, hist: ChromaHistogram, prior_sigma: float = 0.0) -> "Quantizer":
        """Zhang et al.'s quantiser: every in-gamut cell of the ab grid is a class."""
        if hist.space != "lab":
            raise ValueError("the in-gamut quantiser is defined on the Lab ab plane")
        if hist.counts.sum() <= 0:
            raise ValueError("cannot fit a quantizer on an empty histogram (no colour pixels)")
        return cls._with_cells(hist, in_gamut_cells(hist.grid_size), prior_sigma)

    @classmethod
    def _with_cells(cls, hist: ChromaHistogram, kept: np.ndarray, prior_sigma: float = 0.0) -> "Quantizer":
        """Classes = ``kept`` cells; prior and decode chroma from the pixels each class receives."""
        counts, prior_counts, sums = _class_totals(hist, _nearest_kept(kept, hist.grid_size, hist.space), len(kept),
                                                   prior_sigma)
        geometric = cell_centers(hist.grid_size, hist.space)[kept]
        with np.errstate(invalid="ignore", divide="ignore"):
            means = sums / counts[:, None]
        # A class no training pixel reached (only with tiny data) decodes to its cell centre.
        centers = np.where(counts[:, None] > 0, means, geometric)
        prior = prior_counts / prior_counts.sum()
        return cls(kept.astype(np.int64), centers.astype(np.float32), prior.astype(np.float64), hist.grid_size, hist.space)

    def _check_grid(self, hist: ChromaHistogram) -> None:
        if (hist.grid_size, hist.space) != (self.grid_size, self.space):
            raise ValueError("the histogram's grid is not this quantizer's")

    def refit_to(self, hist: ChromaHistogram, keep: float = 0.01, prior_sigma: float = 0.0) -> "Quantizer":
        """The same classes, with their prior P̂ and decode chroma re-estimated from ``hist`` (other photos).

        Fine-tuning uses it (``train --init``, ``--init-prior refit``): the cells the
        network's head was trained on stay, so its outputs keep their meaning, while
        the loss's rebalancing weights and what each class decodes to follow the new
        photos. An archive with a colour cast fills each cell towards one side, and a
        class decoding to the middle of the old photos' pixels misses it.

        The result is the quantiser the same classes would get from a mixture of the
        new pixels (share 1 - ``keep``) and the old ones (share ``keep``): a class
        the new photos never reach keeps a small prior rather than none (its
        rebalancing weight stays bounded, and ``--reference`` can still re-weight
        it) and its old decode chroma; a class they reach a little moves only as
        far as their pixels outweigh the old ones.
        """
        self._check_grid(hist)
        if not 0.0 < keep < 1.0:
            raise ValueError(f"the share of the old prior kept must be in (0, 1), got {keep}")
        raw, counts, sums = _class_totals(hist, self.cell_to_class, self.num_classes, prior_sigma)
        if not raw.sum() > 0:
            raise ValueError("cannot re-estimate the prior from an empty histogram (no colour pixels)")
        prior = (1.0 - keep) * counts / counts.sum() + keep * self.prior
        # decode chroma: the mean of the mixture's pixels in each class (raw counts, as in _with_cells)
        new_share = (1.0 - keep) / raw.sum()
        old_share = keep * self.prior
        weight = (new_share * raw + old_share)[:, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            mixed = (new_share * sums + old_share[:, None] * self.centers) / weight
        # a class with no pixel in either (an old prior of 0: a model fitted on very few photos) keeps its chroma
        centers = np.where(weight > 0, mixed, self.centers)
        return Quantizer(self.kept_cells, centers.astype(np.float32), prior / prior.sum(), self.grid_size, self.space)

    def share_outside(self, hist: ChromaHistogram) -> float:
        """The share of ``hist``'s pixels in cells none of these classes is (they train and decode as the nearest)."""
        self._check_grid(hist)
        total = hist.counts.sum()
        if not total > 0:
            return 0.0
        return float(np.delete(hist.counts, self.kept_cells).sum() / total)

    def grown(self, hist: ChromaHistogram, min_share: float) -> "Quantizer":
        """These classes, followed by new ones: the cells none of them is that hold at
        least ``min_share`` of ``hist``'s pixels, most frequent first.

        Fine-tuning on an archive whose colours these classes miss uses it
        (``train --init --grow-classes``): a colour cast can move a share of an
        archive's pixels into cells the init model never kept, where they would
        train and decode as the nearest class. The old classes keep their index,
        cell, prior and decode chroma, so the network's outputs keep their
        meaning; a new class starts with a prior of 0 and its cell's centre, for
        ``refit_to`` to estimate from the photos.
        """
        self._check_grid(hist)
        if not (np.isfinite(min_share) and 0.0 < min_share <= 1.0):
            raise ValueError(f"the share of pixels a new class needs must be in (0, 1], got {min_share}")
        total = hist.counts.sum()
        if not total > 0:
            raise ValueError("cannot grow classes from an empty histogram (no colour pixels)")
        share = hist.counts / total
        outside = np.setdiff1d(np.flatnonzero(share >= min_share), self.kept_cells)
        new = outside[np.argsort(-share[outside], kind="stable")]
        if not len(new):
            return self
        return Quantizer(
            np.concatenate([self.kept_cells, new]).astype(np.int64),
            np.concatenate([self.centers, cell_centers(self.grid_size, self.space)[new]]).astype(np.float32),
            np.concatenate([self.prior, np.zeros(len(new))]),
            self.grid_size,
            self.space,
        )

    @cached_property
    def cell_to_class(self) -> np.ndarray:
        """(grid²,) class of every grid cell: its own if kept, else the nearest kept one."""
        return _nearest_kept(self.kept_cells, self.grid_size, self.space)

    def encode(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Hard class index of each chroma value (the paper's one-hot targets)."""
        return self.cell_to_class[cell_index(u, v, self.grid_size, self.space)]

    def rebalance_weights(self, lam: float = DEFAULT_REBALANCE_LAMBDA) -> np.ndarray:
        """Per-class loss weights w ∝ ((1 − λ)·P̂(b) + λ/n)⁻¹ with E_P̂[w] = 1 (Zhang et al. Eq. 4).

        λ = 1 gives uniform weights; λ → 0 weights each class by the inverse of
        its frequency, so rare vivid colours count as much as browns and greys.
        """
        if not 0.0 < lam <= 1.0:
            raise ValueError(f"rebalancing lambda must be in (0, 1], got {lam}")
        w = 1.0 / ((1.0 - lam) * self.prior + lam / self.num_classes)
        return w / np.sum(self.prior * w)

    # --- serialisation: plain arrays, stored as tensors in the weights file ---
    def to_arrays(self) -> dict[str, np.ndarray]:
        return {
            "kept_cells": self.kept_cells.astype(np.int64),
            "centers": self.centers.astype(np.float32),
            "prior": self.prior.astype(np.float64),
            "grid_size": np.array([self.grid_size], dtype=np.int64),
            "space": np.array([list(CHROMA_RANGE).index(self.space)], dtype=np.int64),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "Quantizer":
        """The quantiser ``to_arrays`` wrote (a model file's or checkpoint's; checked as one, since anyone can write them)."""
        return cls(
            kept_cells=_integers(arrays["kept_cells"], "kept cells").ravel(),
            centers=np.asarray(arrays["centers"], dtype=np.float32),
            prior=np.asarray(arrays["prior"], dtype=np.float64),
            grid_size=_one_integer(arrays["grid_size"], "grid size"),
            # files written before Lab models existed have no "space": they are YUV
            space=_space_named(_one_integer(arrays["space"], "chroma space")) if "space" in arrays else "yuv",
        )


def _integers(values, name: str) -> np.ndarray:
    a = np.asarray(values)
    if a.dtype.kind not in "iu":
        raise ValueError(f"quantizer {name}: whole numbers expected, got {a.dtype}")
    if a.ndim != 1:
        raise ValueError(f"quantizer {name}: one row of numbers expected, got shape {a.shape}")
    return a.astype(np.int64)


def _one_integer(values, name: str) -> int:
    a = _integers(np.asarray(values).reshape(-1), name)
    if a.size != 1:
        raise ValueError(f"quantizer {name}: one number expected, got {a.size}")
    return int(a[0])


def _space_named(index: int) -> str:
    """The chroma space a quantiser's arrays store by its index in CHROMA_RANGE."""
    if not 0 <= index < len(CHROMA_RANGE):
        raise ValueError(f"unknown chroma space number {index}")
    return list(CHROMA_RANGE)[index]


def in_gamut_cells(grid_size: int = LAB_GRID_SIZE, samples_per_axis: int = 5, lightness_steps: int = 201) -> np.ndarray:
    """Flat indices of the ab cells that hold some sRGB colour: Zhang et al.'s "in-gamut" bins.

    A cell counts if any of ``samples_per_axis``² points spread over it (edges
    included), at any of ``lightness_steps`` lightnesses from 0 to 100, converts
    to sRGB without leaving [0, 1] (checked before any clipping). On their grid
    (cells of 10 centred on multiples of 10, D65) this keeps 262 cells. Zhang et
    al. report Q = 313 without giving the rule (their bins ship as a data file);
    counting only the cell centres would keep 225, the centres inside the convex
    hull of the gamut 233: every such rule leaves out colours that photos have.
    """
    from .color import lab_to_linear_rgb

    half = LAB_AB_MAX / grid_size
    offsets = np.linspace(-half, half, samples_per_axis)
    L = np.linspace(0, 100, lightness_steps)
    found = np.zeros(grid_size * grid_size, dtype=bool)
    for da in offsets:
        for db in offsets:
            ab = cell_centers(grid_size, "lab") + [da, db]
            lab = np.empty((len(L), len(ab), 3))
            lab[..., 0], lab[..., 1:] = L[:, None], ab  # (nL, g², 3): every lightness × every point
            linear = lab_to_linear_rgb(lab)  # unclipped
            found |= np.all((linear >= 0) & (linear <= 1), axis=-1).any(axis=0)
    return np.flatnonzero(found).astype(np.int64)


def _class_totals(
    hist: ChromaHistogram, lut: np.ndarray, num_classes: int, prior_sigma: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per class, over the cells ``lut`` maps to it: the pixel count, the count its prior is estimated from
    (smoothed first when ``prior_sigma`` > 0), and the (u, v) sums its decode chroma is the mean of."""
    if not (np.isfinite(prior_sigma) and prior_sigma >= 0):
        raise ValueError(f"prior smoothing σ must be ≥ 0, got {prior_sigma}")
    counts = np.bincount(lut, weights=hist.counts, minlength=num_classes)
    prior_counts = counts
    if prior_sigma > 0:
        prior_counts = np.bincount(lut, weights=smooth_grid(hist.counts, hist.grid_size, prior_sigma), minlength=num_classes)
    sums = np.stack([np.bincount(lut, weights=hist.sum_u, minlength=num_classes),
                     np.bincount(lut, weights=hist.sum_v, minlength=num_classes)], axis=1)
    return counts, prior_counts, sums


def _nearest_kept(kept: np.ndarray, grid_size: int, space: str = "yuv") -> np.ndarray:
    """(grid²,) index into ``kept`` of the nearest kept cell centre, per cell."""
    centers = cell_centers(grid_size, space)
    d = ((centers[:, None, :] - centers[None, kept, :]) ** 2).sum(-1)
    # argmin takes the first minimum: ties go to the more frequent kept cell.
    return np.argmin(d, axis=1)
