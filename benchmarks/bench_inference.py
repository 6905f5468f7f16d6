"""End-to-end colorize time and peak memory, per photo size.

    python benchmarks/bench_inference.py
    python benchmarks/bench_inference.py --sizes 256x256 4000x3000 --model runs/mine

Each size runs in a fresh Python process (so the peak resident memory is that
photo's alone): one JPEG of that size is written, colorized once to warm up,
then ``--repeats`` times with ``colorunet.colorize_full`` (decode, network at the
working size, chroma upsampling, recombination; the PNG encode is timed apart).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def child(size: str, model: str, repeats: int, working_size: int) -> dict:
    sys.path.insert(0, str(SRC))
    import numpy as np
    from PIL import Image

    from colorunet.pipeline import colorize_full, get_model
    from colorunet.images import save_image

    w, h = (int(x) for x in size.split("x"))
    rng = np.random.default_rng(0)
    small = rng.uniform(0, 255, (max(2, h // 64), max(2, w // 64), 3)).astype(np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "photo.jpg"
        Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC).save(path, quality=90)
        m = get_model(model)
        colorize_full(path, m, working_size=working_size)  # warm-up
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            result = colorize_full(path, m, working_size=working_size)
            times.append(time.perf_counter() - t)
        t = time.perf_counter()
        save_image(result.image, Path(tmp) / "out.png")
        encode = time.perf_counter() - t
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"size": size, "megapixels": w * h / 1e6, "colorize_s": min(times), "png_encode_s": encode, "peak_rss_mb": peak_mb}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", nargs="+", default=["256x256", "1024x1024", "4000x3000"])
    p.add_argument("--model", default="default")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--working-size", type=int, default=256)
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.model, args.repeats, args.working_size)))
        return
    print(f"# model {args.model}, working size {args.working_size}, best of {args.repeats} (after one warm-up)")
    print(f"{'size':>11}{'MP':>7}{'colorize s':>12}{'PNG encode s':>14}{'peak RSS MB':>13}")
    for size in args.sizes:
        out = subprocess.run([sys.executable, __file__, "--child", size, "--model", args.model, "--repeats", str(args.repeats),
                              "--working-size", str(args.working_size)], capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{r['size']:>11}{r['megapixels']:>7.1f}{r['colorize_s']:>12.3f}{r['png_encode_s']:>14.2f}{r['peak_rss_mb']:>13.0f}", flush=True)


if __name__ == "__main__":
    main()
