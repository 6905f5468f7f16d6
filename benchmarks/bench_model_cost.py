"""What a model costs next to the shipped one, side by side in one run.

    python benchmarks/bench_model_cost.py runs/semantic-ft

Times ``colorize_full`` on a 12-megapixel JPEG (a smooth random field, 4000×3000)
for the shipped model and for MODEL (one warm-up, then the best of 3), then a
cold ``colorunet colorize`` of the bundled sample as a fresh process, best of 3.
Prints the times and the 12-megapixel ratio.
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from colorunet.inference.pipeline import colorize_full, default_sample, get_model  # noqa: E402


def best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", help="the model to compare with the shipped one")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        photo = Path(tmp) / "12mp.jpg"
        small = np.random.default_rng(0).uniform(0, 255, (3000 // 64, 4000 // 64)).astype(np.uint8)
        Image.fromarray(small).resize((4000, 3000), Image.Resampling.BICUBIC).save(photo, quality=90)
        big = {}
        for spec in ("default", args.model):
            m = get_model(spec)
            colorize_full(photo, m)  # warm-up: the first call prepares the CPU inference forward
            big[spec] = best_of(lambda m=m: colorize_full(photo, m))
            print(f"{spec}: 12-megapixel colorize, best of 3: {big[spec]:.3f} s", flush=True)
        print(f"ratio: {big[args.model] / big['default']:.2f}x")
        for spec in ("default", args.model):
            out = Path(tmp) / "cold.png"
            cmd = [
                sys.executable,
                "-m",
                "colorunet",
                "colorize",
                str(default_sample()),
                "-o",
                str(out),
                "--overwrite",
                "--model",
                spec,
                "-q",
            ]
            cold = best_of(lambda cmd=cmd: subprocess.run(cmd, check=True))
            print(f"{spec}: cold colorize of the sample, best of 3: {cold:.2f} s", flush=True)


if __name__ == "__main__":
    main()
