"""Flicker of per-frame vs smoothed colorization on a real clip, and of the colour original.

    python benchmarks/video_flicker.py CLIP.mp4 [--frames 250] [--model default]

The clip's own frames are the colour originals; colorunet sees only their
luminance. Flicker: mean absolute frame-to-frame change of chroma (|ΔU| + |ΔV|,
×1000) on pixels whose luminance changed by less than 2/255 (``video.flicker``).
The per-frame and smoothed runs use the same model, temperature and frames.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from colorunet.apps.video import DEFAULT_DECAY, DEFAULT_WINDOW, FrameColorizer, flicker, read_frames  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("clip", type=Path)
    p.add_argument("--frames", type=int, default=250)
    p.add_argument("--model", default="default")
    p.add_argument("--window", type=int, default=DEFAULT_WINDOW)
    p.add_argument("--decay", type=float, default=DEFAULT_DECAY)
    args = p.parse_args()
    originals = list(read_frames(args.clip, args.frames))
    grey = [Image.fromarray(f).convert("L") for f in originals]
    rows = [("colour original", flicker(iter(originals)), None, None)]
    for name, smooth in (("per frame", False), (f"smoothed (T={args.window}, α={args.decay})", True)):
        fc = FrameColorizer(args.model, smooth=smooth, window=args.window, decay=args.decay)
        t = time.perf_counter()
        out = [np.asarray(fc(g)) for g in grey]
        rows.append((name, flicker(iter(out)), len(out) / (time.perf_counter() - t), fc.cuts))
    print(f"# {args.clip.name}: {len(originals)} frames of {originals[0].shape[1]}x{originals[0].shape[0]}, model {args.model}")
    print(f"{'':<28}{'flicker':>9}{'frames/s':>10}{'cuts':>6}")
    for name, fl, fps, cuts in rows:
        print(f"{name:<28}{fl:>9.2f}{'' if fps is None else f'{fps:.1f}':>10}{'' if cuts is None else cuts:>6}")


if __name__ == "__main__":
    main()
