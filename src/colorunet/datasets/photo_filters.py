"""Which pictures count as natural colour photographs, and which are near-duplicates.

Packages mix photos with drawings, renders, logos, calibration targets and grey
scans; a colorizer trained on a flat-coloured cartoon learns flat colours. These
tests are simple, documented heuristics, applied after each source's own
curated list (``open_photos.SOURCES``).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from ..core.color import is_grayscale

#: A drawing has large areas of a few exact colours: if the 16 most frequent
#: exact RGB values cover more than this share of the (opaque) pixels, it is a
#: drawing. Photos, with sensor noise and shading, stay far below (typically < 5%).
DRAWING_TOP16_SHARE = 0.35
#: Pictures whose short side is below this are dropped (icons, thumbnails).
MIN_SIDE = 32
#: Perceptual hashes (64-bit pHash) closer than this many bits are the same photo.
DUPLICATE_HAMMING = 6
#: Background that transparent cut-outs are flattened onto (a neutral mid grey:
#: white or black would add a large, wrong "colour" to learn).
FLATTEN_GREY = (128, 128, 128)


def flatten_alpha(img: Image.Image) -> tuple[Image.Image, np.ndarray | None]:
    """RGB image with transparency composited onto FLATTEN_GREY, and the opaque mask."""
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        alpha = np.asarray(rgba.getchannel("A"))
        background = Image.new("RGBA", rgba.size, FLATTEN_GREY + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB"), alpha > 127
    return img.convert("RGB"), None


def top_color_share(rgb: np.ndarray, mask: np.ndarray | None = None, k: int = 16) -> float:
    """Share of the pixels taken by the k most frequent exact RGB values."""
    px = rgb.reshape(-1, 3).astype(np.uint32)
    if mask is not None:
        px = px[mask.ravel()]
    if len(px) == 0:
        return 1.0
    codes = (px[:, 0] << 16) | (px[:, 1] << 8) | px[:, 2]
    _, counts = np.unique(codes, return_counts=True)
    return float(np.sort(counts)[-k:].sum() / len(codes))


#: The old name, kept for code that imports it (deprecated; use ``top_color_share``).
top_colour_share = top_color_share


def photo_problem(img: Image.Image, min_side: int = MIN_SIDE) -> str | None:
    """Why this picture is not a natural colour photo, or None if it is one."""
    w, h = img.size
    if min(w, h) < min_side:
        return f"too small ({w}×{h})"
    rgb_img, mask = flatten_alpha(img)
    # Judge on a bounded size: the statistics do not need megapixels.
    if max(w, h) > 512:
        rgb_img = rgb_img.resize((max(1, w * 512 // max(w, h)), max(1, h * 512 // max(w, h))), Image.Resampling.NEAREST)
        if mask is not None:
            mask = np.asarray(Image.fromarray(mask).resize(rgb_img.size, Image.Resampling.NEAREST))
    rgb = np.asarray(rgb_img)
    if mask is not None and mask.mean() < 0.05:
        return "almost fully transparent"
    if is_grayscale(rgb if mask is None else rgb[mask][None]):
        return "grayscale"
    share = top_color_share(rgb, mask)
    if share > DRAWING_TOP16_SHARE:
        return f"a drawing or render (16 colours cover {share:.0%} of it)"
    return None


def perceptual_hash(img: Image.Image) -> int:
    """64-bit pHash (DCT of a 32×32 grey thumbnail), robust to scaling and re-encoding."""
    try:
        import imagehash
    except ImportError:
        from ..core.errors import ColorunetError

        raise ColorunetError("near-duplicate detection needs the 'data' extra: pip install 'colorunet[data]'") from None
    bits = imagehash.phash(img.convert("RGB")).hash.ravel()
    return int("".join("1" if b else "0" for b in bits), 2)


class DuplicateIndex:
    """Remembers the hashes seen so far; ``find`` returns the name of a near-duplicate."""

    def __init__(self, max_distance: int = DUPLICATE_HAMMING):
        self.max_distance = max_distance
        self.hashes: list[int] = []
        self.names: list[str] = []

    def find(self, h: int) -> str | None:
        for other, name in zip(self.hashes, self.names):
            if (h ^ other).bit_count() <= self.max_distance:
                return name
        return None

    def add(self, h: int, name: str) -> None:
        self.hashes.append(h)
        self.names.append(name)
