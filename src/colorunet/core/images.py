"""Reading and writing photos: EXIF orientation, modes, clear errors, atomic writes.

Every failure a user can cause (a missing file, a file that is no image, a
truncated JPEG, a picture too large to decode safely) raises ``ImageError`` with
a one-line message that names the file, so that callers can report it and move on.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .atomic import atomic_path
from .errors import ColorunetError

#: File name extensions colorunet reads when given a folder.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")
#: Output formats by extension.
FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".jfif": "JPEG",
    ".jpe": "JPEG",
    ".webp": "WEBP",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}
#: Largest picture decoded (pixels). A bigger header is refused before its pixels
#: are decoded (a "decompression bomb": a few kB of PNG that would need 10 GB).
MAX_PIXELS = 200_000_000
# Pillow's own guard refuses at twice its limit, inside Image.open; align it with
# ours so that our check, which names the limit, is the one users meet.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
#: A JPEG codes every 8×8 block of every channel in a few bits at least: a flat grey
#: 12-megapixel JPEG still takes 47 kB (255 pixels a byte). A header that claims far
#: more pixels per byte of file (333 bytes claiming 14000×14000) is a truncated file
#: or a decompression bomb; it is refused before its pixels are decoded.
JPEG_MAX_PIXELS_PER_BYTE = 2048
JPEG_QUALITY = 95
#: zlib level of PNG outputs. Level 1 encodes several times faster than Pillow's
#: default 6, for a file about 25% larger (benchmarks/results/notes_from_code.md):
#: for photos, which barely compress losslessly anyway, time matters more.
PNG_COMPRESS_LEVEL = 1


class ImageError(ColorunetError):
    """A photo that cannot be read or written. The message names the file."""


class ImageTooLarge(ImageError):
    """A photo with more pixels than the limit (refused before decoding)."""


def find_images(folder: Path) -> list[Path]:
    """Image files under ``folder``, recursively, in a stable (sorted) order."""
    folder = Path(folder)
    return sorted(
        p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file() and not p.name.startswith(".")
    )


def open_image(
    path: str | os.PathLike | bytes, max_pixels: int = MAX_PIXELS, draft_short_side: int | None = None, name: str | None = None
) -> Image.Image:
    """Open and fully decode a photo, upright (EXIF orientation applied).

    ``path`` may also be the file's bytes (an upload); ``name`` is then what the
    messages call it. ``draft_short_side`` lets a JPEG decode at a reduced scale
    (1/2, 1/4, 1/8) as long as its short side stays at least that long: much
    faster for training, where photos are downsized anyway.

    Raises:
        ImageTooLarge: more than ``max_pixels`` pixels (checked before decoding).
        ImageError: the file is missing, unreadable, not an image or truncated.
    """
    if isinstance(path, bytes):
        source, label = io.BytesIO(path), name or "upload"
    else:
        source = label = Path(path)
        if source.is_dir():
            raise ImageError(f"{label}: is a directory, not an image file")
    try:
        with Image.open(source) as img:
            w, h = img.size
            if w * h > max_pixels:
                raise ImageTooLarge(f"{label}: {w}×{h} pixels is over the limit of {max_pixels:,} pixels")
            if img.format == "JPEG" and w * h > 1_000_000:
                size = len(path) if isinstance(path, bytes) else os.stat(source).st_size
                if w * h > JPEG_MAX_PIXELS_PER_BYTE * size:
                    raise ImageError(f"{label}: claims {w}×{h} pixels in only {size:,} bytes (a truncated file or a "
                                     "decompression bomb); refused")
            if draft_short_side and img.format == "JPEG":
                f = draft_short_side / min(w, h)
                img.draft("RGB", (max(1, int(w * f + 1)), max(1, int(h * f + 1))))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                img.load()
            frames = frame_count(img)
            img = ImageOps.exif_transpose(img)
            img.info["frames"] = frames  # an animation: only the first frame was loaded
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(f"{label}: no such file") from None
    except PermissionError:
        raise ImageError(f"{label}: permission denied") from None
    except UnidentifiedImageError:
        raise ImageError(f"{label}: not an image file, or in a format colorunet cannot read (JPEG, PNG, WebP, TIFF, BMP and "
                         "GIF work)") from None
    except Image.DecompressionBombError:
        raise ImageTooLarge(f"{label}: refused, more pixels than the limit of {max_pixels:,}") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"{label}: cannot decode image ({e})") from None
    return img


def frame_count(img: Image.Image) -> int:
    """Frames in an image file (animated GIF, WebP, APNG, multi-page TIFF); 1 for a still."""
    return int(getattr(img, "n_frames", 1) or 1)


def to_float_rgb(img: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """Pixels as float32 RGB in [0, 1], plus the alpha channel if there is one.

    Returns:
        rgb: (H, W, 3) float32.
        alpha: (H, W) uint8, or None.
    """
    pixels, alpha = stored_pixels(img)
    return float_rgb(pixels), alpha


def stored_pixels(img: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """The pixels before their conversion to float, plus alpha (or None).

    (H, W, 3) uint8 RGB; for 16-bit, 32-bit and float greyscale, (H, W, 1) float32 already in
    [0, 1] (keeping the precision instead of Pillow's clipping to 8 bits).
    ``float_rgb`` converts them, whole or a block of rows at a time: a
    12-megapixel photo is 36 MB as stored and 144 MB as float RGB.
    """
    alpha = None
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        alpha = np.asarray(img.getchannel("A"))
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        exact = np.float64 if img.mode == "I" else np.float32  # 32-bit integers do not fit float32's 24-bit mantissa
        gray = gray_in_unit_range(np.asarray(img, dtype=exact), f"a mode {img.mode!r} image", floats=img.mode == "F")
        return gray[..., None], alpha
    return np.asarray(img.convert("RGB")), alpha


def gray_in_unit_range(a: np.ndarray, what: str, floats: bool = False) -> np.ndarray:
    """Greyscale values of a 16-bit, 32-bit or floating-point image as float32 in [0, 1].

    The range is read from the values: ``floats`` up to 1 are already in [0, 1];
    integers up to 255 are 8-bit, up to 65535 16-bit, above that the full (signed)
    32-bit range. (Pillow's own conversion clips everything to 0–255: a 16-bit photo came
    out near-white, a float one in [0, 1] black.) NaN, infinities and negative
    values are refused.
    """
    if a.size and not np.isfinite(a).all():
        raise ImageError(f"{what}: holds NaN or infinite values")
    low, high = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if low < 0:
        raise ImageError(f"{what}: holds negative values (down to {low:g}); expected brightness values from 0")
    for peak in ((1.0,) if floats else ()) + (255.0, 65535.0, 2.0**31 - 1):
        if high <= peak:
            return (a / peak).astype(np.float32)
    raise ImageError(f"{what}: values up to {high:g} are out of any image range")


def float_rgb(pixels: np.ndarray) -> np.ndarray:
    """``stored_pixels``' array (or rows of it) as (h, W, 3) float32 RGB in [0, 1]."""
    if pixels.dtype == np.uint8:
        return pixels.astype(np.float32) / np.float32(255.0)
    return np.repeat(pixels, 3, axis=2)


def to_uint8(x: np.ndarray) -> np.ndarray:
    """[0, 1] floats to uint8 with rounding (not truncation, which darkens by half a level)."""
    return np.clip(np.rint(np.asarray(x) * 255.0), 0, 255).astype(np.uint8)


def output_format(path: Path, fmt: str | None = None) -> str:
    """Pillow format name for ``path`` (or the explicit ``fmt``)."""
    key = ("." + fmt.lower().lstrip(".")) if fmt else Path(path).suffix.lower()
    if key not in FORMATS:
        known = ", ".join(sorted({k.lstrip('.') for k in FORMATS}))
        raise ImageError(f"{path}: unknown output format {key or '(no extension)'!r}; use one of {known}")
    return FORMATS[key]


def save_image(img: Image.Image, path: str | os.PathLike, fmt: str | None = None) -> None:
    """Write ``img`` atomically: to a temporary file beside ``path``, then rename.

    A crash or Ctrl-C never leaves a half-written file under the final name.
    """
    path = Path(path)
    pil_format = output_format(path, fmt)
    if pil_format == "JPEG" and img.mode not in ("RGB", "L"):
        img = img.convert("RGB")  # JPEG has no alpha
    kwargs = (
        {"quality": JPEG_QUALITY}
        if pil_format in ("JPEG", "WEBP")
        else {"compress_level": PNG_COMPRESS_LEVEL}
        if pil_format == "PNG"
        else {}
    )
    try:
        with atomic_path(path) as tmp:
            img.save(tmp, format=pil_format, **kwargs)
    except OSError as e:
        raise ImageError(f"{path}: cannot write ({e.strerror or e})") from None


def pad_to_multiple(y: np.ndarray, multiple: int) -> np.ndarray:
    """(h, w) luma edge-padded at the bottom and right to multiples of ``multiple``, float32.

    Edge (replicate), not reflect: reflection needs the pad to be smaller than the
    image, which fails for a 1×N photo. Callers crop the network's output back to (h, w).
    """
    h, w = y.shape
    y = np.asarray(y, dtype=np.float32)
    if h % multiple == 0 and w % multiple == 0:
        return np.ascontiguousarray(y)
    return np.pad(y, ((0, -h % multiple), (0, -w % multiple)), mode="edge")
