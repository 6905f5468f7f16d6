"""Time of --refine and of hints on a photo, next to plain colorize, in one process.

    python benchmarks/bench_refine.py [--size 1024x1024] [--repeats 3]

The photo is a smooth random colour field saved as JPEG; each variant is run once
to warm up, then timed ``--repeats`` times (best kept). Refinement works at the
working size (256 on the short side), so its cost hardly grows with the photo.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from colorunet.pipeline import colorize_full, get_model  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="1024x1024")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    w, h = (int(x) for x in args.size.split("x"))
    rng = np.random.default_rng(0)
    small = rng.uniform(0, 255, (max(2, h // 64), max(2, w // 64), 3)).astype(np.uint8)
    hints = {"points": [{"x": int(x), "y": int(y), "color": "#c0392b"} for x, y in zip(rng.integers(0, w, 5), rng.integers(0, h, 5))]}
    model = get_model("default")
    variants = {"plain": {}, "refine": {"refine": True}, "5 hints": {"hints": hints}, "refine + 5 hints": {"refine": True, "hints": hints}}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "photo.jpg"
        Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC).save(path, quality=90)
        print(f"# {args.size} photo, shipped model, best of {args.repeats}")
        base = None
        for name, kw in variants.items():
            colorize_full(path, model, **kw)
            best = min(_timed(lambda: colorize_full(path, model, **kw)) for _ in range(args.repeats))
            base = base or best
            print(f"{name:<18}{best:>8.3f} s{best / base:>8.2f}x", flush=True)


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
