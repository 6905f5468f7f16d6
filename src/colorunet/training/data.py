"""Training data: a folder of colour photos, a fixed split, and augmented crops.

Photos are decoded once, resized (Lanczos) so their short side is ``load_size``
and kept in memory as uint8. Every random choice of a training sample is drawn
from a generator seeded by (seed, sample number), so the batch of any step can
be rebuilt from the step number alone: resuming a run, or a data-loader worker
restarting, gives the exact same batches as an uninterrupted run.

The augmentations are the paper's (ColorUNet, "Data augmentation"): random crops,
horizontal flips, and Gaussian noise of a few levels on the grey input only (the
targets stay clean, so the network learns to look through film grain).
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..core.color import is_grayscale, to_lightness_chroma
from ..core.images import ImageError, find_images, open_image
from ..core.quantize import ChromaHistogram, Quantizer

#: Standard deviations of the Gaussian noise added to the grey input, one drawn per crop.
NOISE_LEVELS = (0.0, 0.01, 0.02, 0.04)


def load_photo(path: Path | bytes, load_size: int, min_size: int = 0, name: str | None = None) -> np.ndarray:
    """Decode a photo, resized (Lanczos) so its short side is ``load_size``; (H, W, 3) uint8.

    Photos smaller than that are not blown up to it (a 64-px thumbnail scaled ×4
    teaches blur); they are only enlarged to ``min_size`` (the crop) if they are
    smaller still, so that a crop fits. ``path`` may be the file's bytes (a
    record of a tar shard); ``name`` is then what error messages call it.
    """
    img = open_image(path, draft_short_side=load_size, name=name)
    w, h = img.size
    img = img.convert("RGB")
    short = min(w, h)
    target = load_size if short > load_size else max(short, min_size)
    scale = target / short
    size = (target, max(target, round(h * scale))) if w <= h else (max(target, round(w * scale)), target)
    if size != img.size:
        img = img.resize(size, Image.Resampling.LANCZOS)
    return np.asarray(img)


@dataclass
class PhotoSet:
    """Decoded training photos and what was skipped (with why)."""

    photos: list[np.ndarray]
    paths: list[Path]
    skipped: list[str]


def load_photos(
    paths: list[Path], load_size: int, progress: bool = True, min_size: int = 0, workers: int | None = None
) -> PhotoSet:
    """Decode photos in parallel (Pillow releases the GIL), skipping bad and grey ones."""
    import os

    workers = workers or min(8, os.cpu_count() or 1)
    from tqdm import tqdm

    def one(p: Path):
        try:
            a = load_photo(p, load_size, min_size)
        except ImageError as e:
            return None, str(e)
        if is_grayscale(a):
            return None, f"{p}: skipped, a grayscale photo"
        return a, None

    photos, kept, skipped = [], [], []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = pool.map(one, paths)
        for p, (a, why) in zip(
            paths, tqdm(results, total=len(paths), desc="loading photos", disable=not progress, file=sys.stderr, leave=False)
        ):
            if a is None:
                skipped.append(why)
            else:
                photos.append(a)
                kept.append(p)
    return PhotoSet(photos, kept, skipped)


def prior_sample(n_photos: int, max_photos: int, seed: int) -> list[int]:
    """Which photos the colour prior is estimated from: all, or a seeded sample of ``max_photos``.

    The prior P̂ of a few thousand photos is as good as that of a million (its
    32 largest cells are what matters), and a sample keeps start-up time flat
    however large the corpus is.
    """
    if max_photos <= 0 or n_photos <= max_photos:
        return list(range(n_photos))
    return sorted(np.random.default_rng((seed, 0x9121)).choice(n_photos, size=max_photos, replace=False).tolist())


def chroma_histogram(photos, grid_size: int, max_pixels_per_photo: int = 65536, space: str = "yuv") -> ChromaHistogram:
    """The prior P̂ over grid cells, in one pass over (a regular subsample of) each photo's pixels.

    ``photos`` is any iterable of (H, W, 3) uint8 arrays: a list, or a generator
    decoding photos one at a time.
    """
    hist = ChromaHistogram.empty(grid_size, space)
    for a in photos:
        stride = max(1, int(np.sqrt(a.shape[0] * a.shape[1] / max_pixels_per_photo)))
        _, chroma = to_lightness_chroma(a[::stride, ::stride].astype(np.float32) / 255.0, space)
        hist = hist + ChromaHistogram.of(chroma[..., 0], chroma[..., 1], grid_size, space)
    return hist


class CropBatches(torch.utils.data.Dataset):
    """Batch number ``step`` of the training stream; a pure function of (seed, step).

    The stream of samples is the concatenation of one random permutation of the
    photos per epoch (or, for tar shards, the order ``photos.photo_of`` gives).
    Each sample's crop, flip and noise come from a generator seeded by
    (seed, sample number), so the stream is a function of the global sample
    number alone. A step consumes ``batch_size × world_size`` consecutive
    samples, rank r taking the r-th slice of ``batch_size``: ranks see disjoint
    photos within an epoch, and a run resumed with another number of processes
    continues the same stream from ``sample_base`` (the samples consumed before
    ``start_step``). With one process, step s takes samples [s·B, (s+1)·B).
    """

    def __init__(
        self,
        photos: list[np.ndarray],
        quantizer: Quantizer,
        batch_size: int,
        crop: int,
        seed: int,
        augment: bool = True,
        num_steps: int = 0,
        rank: int = 0,
        world_size: int = 1,
        start_step: int = 0,
        sample_base: int | None = None,
    ):
        if not len(photos):
            raise ValueError("no training photos")
        self.photos = photos
        self.quantizer = quantizer
        self.batch_size = batch_size
        self.crop = crop
        self.seed = seed
        self.augment = augment
        self.num_steps = num_steps
        self.rank = rank
        self.world_size = world_size
        self.start_step = start_step
        self.sample_base = start_step * batch_size * world_size if sample_base is None else sample_base

    def first_sample(self, step: int) -> int:
        """Global number of this rank's first sample in ``step``."""
        b = self.batch_size
        return self.sample_base + (step - self.start_step) * b * self.world_size + self.rank * b

    def __len__(self) -> int:
        return self.num_steps

    def _photo_of(self, k: int) -> int:
        if hasattr(self.photos, "photo_of"):
            return self.photos.photo_of(k)
        n = len(self.photos)
        return int(self._epoch_permutation(k // n)[k % n])

    def _epoch_permutation(self, epoch: int) -> np.ndarray:
        """The order of the photos in ``epoch``, computed once per epoch (it is O(n),
        which redone for every sample made large folders train slower; see benchmarks/results/notes_from_code.md)."""
        cached = getattr(self, "_perm_cache", None)
        if cached is None or cached[0] != epoch:
            perm = np.random.default_rng((self.seed, 0xE0C, epoch)).permutation(len(self.photos))
            self._perm_cache = cached = (epoch, perm)
        return cached[1]

    def sample(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sample number k: noisy Y (1, c, c), clean UV (2, c, c), class targets (c, c)."""
        a = self.photos[self._photo_of(k)]
        rng = np.random.default_rng((self.seed, k))
        c = self.crop
        top = int(rng.integers(0, a.shape[0] - c + 1))
        left = int(rng.integers(0, a.shape[1] - c + 1))
        patch = a[top : top + c, left : left + c]
        if self.augment and rng.random() < 0.5:
            patch = patch[:, ::-1]
        # lightness and chroma: Y and UV (ColorUNet), or L/100 and ab (the eccv16 baseline)
        y, chroma = to_lightness_chroma(patch.astype(np.float32) * np.float32(1 / 255), self.quantizer.space)
        if self.augment:
            sigma = NOISE_LEVELS[int(rng.integers(len(NOISE_LEVELS)))]
            if sigma > 0:
                y = y + rng.normal(0.0, sigma, y.shape).astype(np.float32)
        # Targets are made here, in the loader, so the training step only reads them.
        target = self.quantizer.encode(chroma[..., 0], chroma[..., 1])
        return y[None], np.ascontiguousarray(chroma.transpose(2, 0, 1)), target

    def __getitem__(self, step: int) -> dict[str, torch.Tensor]:
        first = self.first_sample(step)
        ys, uvs, targets = zip(*(self.sample(first + i) for i in range(self.batch_size)))
        return {
            "y": torch.from_numpy(np.stack(ys)),  # (B, 1, c, c)
            "uv": torch.from_numpy(np.stack(uvs)),  # (B, 2, c, c)
            "target": torch.from_numpy(np.stack(targets)),  # (B, c, c) int64
        }


#: The validation loss is computed on (at most) this many held-out photos, in one batch.
MAX_VALIDATION_PHOTOS = 256


def validation_batch(photos: list[np.ndarray], quantizer: Quantizer, crop: int) -> dict[str, torch.Tensor] | None:
    """Centre crops of the (first MAX_VALIDATION_PHOTOS) validation photos, clean (no augmentation)."""
    photos = photos[:MAX_VALIDATION_PHOTOS]
    if not photos:
        return None
    ys, uvs, targets = [], [], []
    for a in photos:
        top, left = (a.shape[0] - crop) // 2, (a.shape[1] - crop) // 2
        y, chroma = to_lightness_chroma(a[top : top + crop, left : left + crop].astype(np.float32) / 255.0, quantizer.space)
        ys.append(y[None])
        uvs.append(chroma.transpose(2, 0, 1))
        targets.append(quantizer.encode(chroma[..., 0], chroma[..., 1]))
    return {
        "y": torch.from_numpy(np.stack(ys)),
        "uv": torch.from_numpy(np.ascontiguousarray(np.stack(uvs))),
        "target": torch.from_numpy(np.stack(targets)),
    }


def photo_folder(root: Path) -> list[Path]:
    """The photos of a training folder, or a clear error if there are none."""
    root = Path(root)
    if not root.is_dir():
        raise ImageError(f"{root}: not a folder of photos")
    paths = find_images(root)
    if not paths:
        raise ImageError(f"{root}: no photos found (looked for {', '.join(('jpg', 'png', 'webp', 'bmp', 'tiff'))})")
    return paths
