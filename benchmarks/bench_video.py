"""Video throughput: frames/s of ``colorunet video`` (decode, colorize, smooth, encode).

    python benchmarks/bench_video.py [--frames 48] [--sizes 854x480 1920x1080]

Each size: a synthetic H.264 clip (a pan across a smooth colour pattern) is
written, then colorized end to end with the default settings (smoothing on,
H.264 CRF 18), in this process, one after the other.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import av  # noqa: E402

from colorunet.apps.video import FrameColorizer, colorize_video  # noqa: E402


def make_clip(path: Path, w: int, h: int, n: int) -> None:
    yy, xx = np.mgrid[0:h, 0 : w + n * 4] / 200.0
    pattern = np.stack([np.sin(xx + 1), np.cos(yy * 1.3), np.sin(xx * 0.7 + yy)], -1) * 0.4 + 0.5
    pattern = (pattern * 255).astype(np.uint8)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        for i in range(n):
            c.mux(s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(pattern[:, i * 4 : i * 4 + w]), format="rgb24")))
        c.mux(s.encode(None))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=48)
    p.add_argument("--sizes", nargs="+", default=["854x480", "1920x1080"])
    p.add_argument("--model", default="default")
    args = p.parse_args()
    print(f"# {args.frames} frames per clip, model {args.model}, smoothing on, H.264 CRF 18")
    print(f"{'size':>11}{'frames/s':>10}{'s/frame':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            w, h = (int(x) for x in size.split("x"))
            src = Path(tmp) / f"in_{size}.mp4"
            make_clip(src, w, h, args.frames)
            fc = FrameColorizer(args.model)
            t = time.perf_counter()
            report = colorize_video(src, Path(tmp) / f"out_{size}.mp4", fc, progress=False)
            dt = time.perf_counter() - t
            print(f"{size:>11}{report.frames / dt:>10.2f}{dt / report.frames:>9.3f}", flush=True)


if __name__ == "__main__":
    main()
