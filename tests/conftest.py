"""Shared fixtures: small photos made here, and one tiny trained model per test session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def synthetic_photo(rng: np.random.Generator, h: int = 96, w: int = 128) -> np.ndarray:
    """A colourful (H, W, 3) uint8 'photo': smooth colour gradients, blobs and noise."""
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = rng.uniform(0.2, 0.8, 3)
    slope = rng.uniform(-0.6, 0.6, (2, 3))
    img = base + yy[..., None] * slope[0] + xx[..., None] * slope[1]
    for _ in range(3):
        cy, cx, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.1, 0.3)
        mask = ((yy - cy) ** 2 + (xx - cx) ** 2) < r**2
        img[mask] = rng.uniform(0, 1, 3)
    img += rng.normal(0, 0.02, img.shape)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def learnable_photo(rng: np.random.Generator, h: int = 96, w: int = 128) -> np.ndarray:
    """A photo whose colour is a function of its brightness (dark green, mid red, light blue).

    Random blobs have colours no network can guess from grey; this one can be
    learnt in a few dozen steps, which is what a test of "training learns" needs.
    """
    from colorunet.core.color import yuv_to_rgb

    yy, xx = np.mgrid[0:h, 0:w] / 16.0
    a, b, c = rng.uniform(0.5, 1.5, 3)
    y = 0.5 + 0.3 * np.sin(a * yy + c) * np.cos(b * xx - c)
    angle = 2 * np.pi * (0.2 + 1.2 * y)
    yuv = np.stack([y, 0.15 * np.cos(angle), 0.2 * np.sin(angle)], axis=-1)
    return (np.clip(yuv_to_rgb(yuv), 0, 1) * 255).round().astype(np.uint8)


@pytest.fixture(scope="session")
def photo_dir(tmp_path_factory) -> Path:
    """Eight small colour photos in a folder (one in a subfolder)."""
    d = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    (d / "sub").mkdir()
    for i in range(8):
        target = d / "sub" if i == 7 else d
        Image.fromarray(learnable_photo(rng)).save(target / f"p{i}.png")
    return d


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, photo_dir) -> Path:
    """A run folder trained for a few steps on ``photo_dir`` through the real trainer."""
    from colorunet.training.trainer import Trainer, resolve_configs

    out = tmp_path_factory.mktemp("run") / "tiny"
    mc, cfg = resolve_configs("paper", {}, {"steps": 6, "batch_size": 4, "crop": 32, "load_size": 64, "checkpoint_every": 3})
    Trainer(photo_dir, out, mc, cfg, progress=False).run()
    return out
