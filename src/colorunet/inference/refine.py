"""Confidence-guided colour propagation and user colour hints (the paper's future work).

ColorUNet's conclusion proposes taking the pixels the network is sure of as seeds
and diffusing their colours with Levin, Lischinski & Weiss's optimisation
("Colorization using Optimization", SIGGRAPH 2004), to remove the stains and
bleeding of per-pixel classification. The same solver takes colours a person
gives ("this coat was red").

Levin et al. ask neighbouring pixels of similar luminance to have similar
chroma, with the affinity w_rs = exp(−(Y_r − Y_s)² / 2σ_r²), σ_r² the luminance
variance around r. We use that affinity in the quadratic form of a graph
Laplacian, plus a data term that pulls each pixel towards the network's chroma
with a weight c_r:

    minimise  Σ_{r~s} w_rs (U_r − U_s)²  +  Σ_r c_r (U_r − Û_r)²

that is, solve (L + C) U = C Û, a sparse, symmetric positive-definite system,
once per chroma channel (one factorisation, two right-hand sides). c_r is large
on seeds (the network's most confident pixels, with ``refine``), small elsewhere
(the network's colour as a weak prior) and very large on hint pixels (the user's
colour wins). Levin et al. use hard constraints and the row form (I − W)U = 0
instead; the data-term form lets "seed" be a matter of degree and keeps every
system solvable. Everything runs at the working size; the result is upsampled
like the network's own chroma.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.color import rgb_to_yuv
from ..core.errors import ColorunetError
from ..core.values import ValueRangeError, check_number

#: Share of each colour class's core pixels, the most confident ones, used as seeds by ``refine``.
SEED_FRACTION = 0.3
#: Seeds come only from a class's core: its pixels at least this many working-size pixels
#: inside its region (binary erosion). A stain is a small region of its own class; without
#: this it seeds itself and keeps its colour. Measured on pool/eval with the shipped model
#: (``benchmarks/bench_refine.py --eval pool/eval``): radius 0, 1, 2, 3 leave 0.54, 0.42, 0.32, 0.26 %
#: stained pixels (2.89 % unrefined) and keep 93.5, 92.1, 90.7, 89.1 % of the colourfulness; 2 is
#: the largest radius that keeps 90 %.
SEED_CORE_RADIUS = 2
#: A seed must be at least this many times as probable as a uniform guess (1/n): a flat
#: distribution says nothing, however its ties are ranked.
SEED_FLOOR_OVER_UNIFORM = 2.0
#: Weight of the data term on seeds, elsewhere, and on hint pixels.
SEED_WEIGHT = 1.0
PRIOR_WEIGHT = 1e-4
HINT_WEIGHT = 1e4
#: Floor of the local luminance variance (flat regions would otherwise have infinite affinity contrast).
MIN_VARIANCE = 1e-4
#: Ceiling of σ² in the affinity. Levin et al. take σ_r² from the window around r,
#: but a window that straddles an edge has a large variance, which weakens the very
#: edge that should stop the colour (a red coat leaked into the sky before this cap).
MAX_VARIANCE = 0.05**2


#: Hint coordinates and widths, in pixels, must lie within ± this.
MAX_COORDINATE = 1e6


class HintError(ColorunetError):
    pass


@dataclass
class Hints:
    """Colours a person gives, in pixel coordinates of the original photo.

    Attributes:
        points: (x, y, (r, g, b)) with r, g, b in [0, 1].
        strokes: (list of (x, y), (r, g, b), width in pixels).
    """

    points: list[tuple[float, float, tuple[float, float, float]]]
    strokes: list[tuple[list[tuple[float, float]], tuple[float, float, float], float]]

    def __bool__(self) -> bool:
        return bool(self.points or self.strokes)


def parse_color(text: str, where: str) -> tuple[float, float, float]:
    t = str(text).strip().lstrip("#")
    if len(t) == 3:
        t = "".join(c * 2 for c in t)
    if len(t) != 6 or any(c not in "0123456789abcdefABCDEF" for c in t):
        raise HintError(f"{where}: colour {text!r} is not #rrggbb")
    return tuple(int(t[i : i + 2], 16) / 255 for i in (0, 2, 4))  # type: ignore[return-value]


def parse_hints(data: dict | list, source: str = "hints") -> Hints:
    """Hints from the JSON form: {"points": [{"x", "y", "color"}], "strokes": [{"points", "color", "width"}]}.

    A list is taken as a list of points.
    """
    if isinstance(data, list):
        data = {"points": data}
    if not isinstance(data, dict):
        raise HintError(f"{source}: expected an object with 'points' and/or 'strokes'")
    unknown = set(data) - {"points", "strokes"}
    if unknown:
        raise HintError(f"{source}: unknown key(s) {', '.join(sorted(unknown))}; expected 'points' and 'strokes'")
    points, strokes = [], []

    def coordinate(value, where: str) -> float:
        # one NaN point made a stroke cover the whole photo; Infinity and 1e400 crashed the drawing
        try:
            return float(check_number(value, where, -MAX_COORDINATE, MAX_COORDINATE))
        except ValueRangeError as e:
            raise HintError(f"{source}: {e}") from None

    try:
        for i, p in enumerate(data.get("points", [])):
            points.append(
                (
                    coordinate(p["x"], f"points[{i}].x"),
                    coordinate(p["y"], f"points[{i}].y"),
                    parse_color(p["color"], f"{source}: points[{i}]"),
                )
            )
        for i, s in enumerate(data.get("strokes", [])):
            pts = [
                (coordinate(x, f"strokes[{i}].points[{j}]"), coordinate(y, f"strokes[{i}].points[{j}]"))
                for j, (x, y) in enumerate(s["points"])
            ]
            if not pts:
                raise HintError(f"{source}: strokes[{i}] has no points")
            width = coordinate(s.get("width", 3), f"strokes[{i}].width")
            if not width > 0:
                raise HintError(f"{source}: strokes[{i}]: width must be > 0")
            strokes.append((pts, parse_color(s["color"], f"{source}: strokes[{i}]"), width))
    except HintError:
        raise
    except (KeyError, TypeError, ValueError) as e:
        raise HintError(f"{source}: malformed hint ({type(e).__name__}: {e})") from None
    return Hints(points, strokes)


def parse_hints_json(text: str, source: str = "hints") -> Hints:
    """Hints from their JSON text (a file's or a form field's)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise HintError(f"{source}: not valid JSON ({e})") from None
    except RecursionError:
        raise HintError(f"{source}: JSON nested too deeply") from None
    return parse_hints(data, source)


def load_hints(path: str | Path) -> Hints:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise HintError(f"{path}: no such hints file") from None
    except IsADirectoryError:
        raise HintError(f"{path}: is a directory, not a hints file") from None
    except UnicodeDecodeError as e:
        raise HintError(f"{path}: not valid JSON ({e})") from None
    except OSError as e:
        raise HintError(f"{path}: cannot read ({e.strerror or e})") from None
    return parse_hints_json(text, str(path))


def rasterize_hints(hints: Hints, full_size: tuple[int, int], small_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Hints drawn at the working size.

    Args:
        full_size: (H, W) of the original photo (the hints' coordinates).
        small_size: (h, w) of the working size.
    Returns:
        mask: (h, w) bool, where a hint was drawn.
        uv: (h, w, 2) the hint chroma there (zero elsewhere).
    """
    from PIL import Image, ImageDraw

    (H, W), (h, w) = full_size, small_size
    sx, sy = w / W, h / H
    canvas = Image.new("RGB", (w, h))
    mask_img = Image.new("L", (w, h))
    draw, mdraw = ImageDraw.Draw(canvas), ImageDraw.Draw(mask_img)

    def ink(rgb):
        return tuple(int(round(c * 255)) for c in rgb)

    for pts, rgb, width in hints.strokes:
        scaled = [(x * sx, y * sy) for x, y in pts]
        lw = max(1, int(round(width * sx)))
        if len(scaled) == 1:
            scaled = scaled * 2
        draw.line(scaled, fill=ink(rgb), width=lw, joint="curve")
        mdraw.line(scaled, fill=255, width=lw, joint="curve")
    for x, y, rgb in hints.points:
        cx, cy = x * sx, y * sy
        draw.ellipse([cx - 1, cy - 1, cx + 1, cy + 1], fill=ink(rgb))  # at least one working pixel
        mdraw.ellipse([cx - 1, cy - 1, cx + 1, cy + 1], fill=255)
    mask = np.asarray(mask_img) > 0
    uv = rgb_to_yuv(np.asarray(canvas, dtype=np.float32) / 255)[..., 1:]
    return mask, np.where(mask[..., None], uv, 0)


def _local_variance(y: np.ndarray) -> np.ndarray:
    from scipy.ndimage import uniform_filter

    mean = uniform_filter(y, 3, mode="nearest")
    return np.clip(uniform_filter(y * y, 3, mode="nearest") - mean * mean, MIN_VARIANCE, MAX_VARIANCE)


def affinity_laplacian(y: np.ndarray):
    """Sparse graph Laplacian L = D − W of the 8-neighbour luminance affinity (Levin et al.)."""
    import scipy.sparse as sp

    h, w = y.shape
    var = _local_variance(y.astype(np.float64))
    idx = np.arange(h * w).reshape(h, w)
    rows, cols, vals = [], [], []
    # four of the eight directions; the symmetric matrix gets the other four
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        ys, xs = slice(0, h - dy), slice(max(0, -dx), w - max(0, dx))
        yt, xt = slice(dy, h), slice(max(0, dx), w - max(0, -dx))
        d2 = (y[ys, xs] - y[yt, xt]) ** 2
        sigma2 = np.minimum(var[ys, xs], var[yt, xt])
        wgt = np.exp(-d2 / (2 * sigma2))
        rows.append(idx[ys, xs].ravel())
        cols.append(idx[yt, xt].ravel())
        vals.append(wgt.ravel())
    r, c, v = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
    W = sp.coo_matrix((np.concatenate([v, v]), (np.concatenate([r, c]), np.concatenate([c, r]))), shape=(h * w, h * w)).tocsr()
    return sp.diags(np.asarray(W.sum(axis=1)).ravel()) - W


def propagate(y: np.ndarray, uv: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Solve (L + C) U = C Û for every channel of Û.

    Args:
        y: (h, w) luma.
        uv: (h, w, k) targets Û (chroma of the network or of hints).
        weights: (h, w) data weights c ≥ 0 (some must be > 0).
    Returns:
        (h, w, k) propagated values.
    """
    import scipy.sparse as sp
    from scipy.sparse.linalg import splu

    h, w = y.shape
    A = (affinity_laplacian(y) + sp.diags(weights.ravel().astype(np.float64))).tocsc()
    k = uv.shape[-1]
    b = (weights[..., None] * uv).reshape(-1, k).astype(np.float64)
    return splu(A).solve(b).reshape(h, w, k).astype(np.float32)


def confident_seeds(
    confidence: np.ndarray,
    classes: np.ndarray,
    num_classes: int,
    fraction: float = SEED_FRACTION,
    core_radius: int | None = None,
) -> np.ndarray:
    """(h, w) bool: the pixels whose colour ``refine`` keeps and spreads.

    For each predicted class, the most confident ``fraction`` of the pixels of
    its core (the class's region eroded by ``core_radius``), ranked by confidence
    with ties broken by position, so equal confidences never make every pixel a
    seed; and only pixels at least SEED_FLOOR_OVER_UNIFORM / n probable. Seeding
    per class, not by one confidence cut over the photo, matters: a model is
    surest of greys and browns, and propagating only those washes vivid colours out.

    Args:
        confidence: (h, w) probability of the top class.
        classes: (h, w) the top class of each pixel.
        num_classes: n, the model's number of colour classes.
        core_radius: erosion of each class's region; None: SEED_CORE_RADIUS.
    """
    from scipy.ndimage import binary_erosion

    core_radius = SEED_CORE_RADIUS if core_radius is None else core_radius
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"seed fraction must be in (0, 1], got {fraction}")
    seeds = np.zeros(confidence.shape, bool)
    flat_conf, flat_seeds = confidence.ravel(), seeds.ravel()
    for c in np.unique(classes):
        core = classes == c
        if core_radius > 0:
            # border_value=1: a region touching the photo's edge is not eroded from outside it
            core = binary_erosion(core, iterations=core_radius, border_value=1)
        members = np.flatnonzero(core)
        keep = int(round(fraction * members.size))
        if keep:
            flat_seeds[members[np.argsort(-flat_conf[members], kind="stable")[:keep]]] = True
    return seeds & (confidence >= SEED_FLOOR_OVER_UNIFORM / num_classes)


def refine_chroma(
    y: np.ndarray,
    uv: np.ndarray,
    seeds: np.ndarray | None,
    hint_mask: np.ndarray | None = None,
    hint_uv: np.ndarray | None = None,
) -> np.ndarray:
    """The network's chroma, propagated from its confident pixels and/or from hints.

    Args:
        y: (h, w) luma at the working size.
        uv: (h, w, 2) the network's chroma.
        seeds: (h, w) bool, the pixels whose colour is kept and spread
            (``confident_seeds``); None: no refinement (with hints, every pixel the
            hints do not reach keeps the network's colour).
        hint_mask, hint_uv: hint pixels and their chroma, or None.
    """
    weights = np.full(y.shape, PRIOR_WEIGHT, dtype=np.float64)
    target = uv.astype(np.float64).copy()
    has_hints = hint_mask is not None and hint_mask.any()
    # Seeds keep the network's colour: its most confident pixels (refine), or every
    # pixel (hints alone: the network's colours stay wherever no hint reaches).
    seeds = np.ones(y.shape, bool) if seeds is None else seeds.copy()
    if has_hints:
        # A hint is the user's word for its whole region: the network's seeds there
        # would fight it. The region is where the hint alone would reach (> 1/3).
        reach = propagate(y, hint_mask[..., None].astype(np.float64), np.where(hint_mask, HINT_WEIGHT, PRIOR_WEIGHT))[..., 0]
        seeds &= reach < 1 / 3
    weights[seeds] = SEED_WEIGHT
    if has_hints:
        weights[hint_mask] = HINT_WEIGHT
        target[hint_mask] = hint_uv[hint_mask]
    return propagate(y, target, weights)
