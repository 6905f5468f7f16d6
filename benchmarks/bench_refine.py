"""Time of --refine and of hints on a photo, next to plain colorize, in one process;
or, with --eval, what refinement's seed core radius does to the colours.

    python benchmarks/bench_refine.py [--size 1024x1024] [--repeats 3]
    python benchmarks/bench_refine.py --eval pool/eval [--radii 0 1 2 3]

The photo is a smooth random colour field saved as JPEG; each variant is run once
to warm up, then timed ``--repeats`` times (best kept). Refinement works at the
working size (256 on the short side), so its cost hardly grows with the photo.

``--eval`` scores the shipped model on a folder of colour photos (at a short
side of 256, as ``colorunet evaluate``) without refinement and with it at each
seed core radius (``refine.SEED_CORE_RADIUS``), printing the stained share, the
colourfulness kept and the invented colour, each a mean over photos.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from colorunet.inference.pipeline import colorize_full, get_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="1024x1024")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--eval", type=Path, metavar="PHOTOS_DIR", help="score the seed core radii on these colour photos instead")
    p.add_argument("--radii", type=int, nargs="+", default=[0, 1, 2, 3])
    args = p.parse_args()
    if args.eval:
        return sweep_radii(args.eval, args.radii)
    w, h = (int(x) for x in args.size.split("x"))
    rng = np.random.default_rng(0)
    small = rng.uniform(0, 255, (max(2, h // 64), max(2, w // 64), 3)).astype(np.uint8)
    hints = {
        "points": [{"x": int(x), "y": int(y), "color": "#c0392b"} for x, y in zip(rng.integers(0, w, 5), rng.integers(0, h, 5))]
    }
    model = get_model("default")
    variants = {
        "plain": {},
        "refine": {"refine": True},
        "5 hints": {"hints": hints},
        "refine + 5 hints": {"refine": True, "hints": hints},
    }
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


def sweep_radii(folder: Path, radii: list[int]) -> None:
    from colorunet.inference import refine
    from colorunet.core.color import rgb_to_lab
    from colorunet.evaluation.evaluate import DEFAULT_EVAL_SIZE, evaluation_photos, scale_to_eval_size
    from colorunet.core.images import open_image, to_float_rgb, to_uint8
    from colorunet.evaluation.metrics import colorfulness, false_color, stain_fraction
    from colorunet.inference.pipeline import predict, render

    model = get_model("default")
    photos = []
    for path in evaluation_photos(folder):
        rgb, _ = to_float_rgb(scale_to_eval_size(open_image(path), DEFAULT_EVAL_SIZE))
        true = to_uint8(rgb)
        photos.append((predict(Image.fromarray(true), model), rgb_to_lab(true / 255.0)[..., 1:]))

    def score(refined: bool) -> tuple[float, float, float]:
        stain, colour, invented = [], [], []
        for pred, true_ab in photos:
            out = np.asarray(render(pred, refine=refined).image.convert("RGB"), dtype=np.float64) / 255
            stain.append(stain_fraction(out))
            colour.append(colorfulness(out))
            invented.append(false_color(rgb_to_lab(out)[..., 1:], true_ab))
        return 100 * float(np.mean(stain)), float(np.mean(colour)), float(np.nanmean(invented))

    # Can confidence tell invented colour from real colour? The top-class probability of
    # vivid output pixels whose true colour is neutral, against those whose true colour is vivid too.
    groups: dict[str, list[np.ndarray]] = {"neutral": [], "colourful": []}
    for pred, true_ab in photos:
        res = render(pred, confidence=True)
        out_ab = rgb_to_lab(np.asarray(res.image.convert("RGB"), dtype=np.float64) / 255)[..., 1:]
        vivid = np.hypot(*out_ab.transpose(2, 0, 1)) > 20
        true_chroma = np.hypot(*true_ab.transpose(2, 0, 1))
        groups["neutral"].append(res.confidence_top[vivid & (true_chroma < 6)])
        groups["colourful"].append(res.confidence_top[vivid & (true_chroma > 20)])
    q = {k: np.quantile(np.concatenate(v), [0.1, 0.5, 0.9]) for k, v in groups.items()}
    print("# top-class probability of vivid output pixels (10th / 50th / 90th percentile): "
          f"truly neutral {q['neutral'].round(3).tolist()}, truly colourful {q['colourful'].round(3).tolist()}")
    print(f"# {len(photos)} photos of {folder}, shipped model; means over photos")
    print(f"{'':<18}{'stained %':>10}{'colourfulness':>15}{'kept':>7}{'invented %':>12}")
    base = score(False)
    print(f"{'no refinement':<18}{base[0]:>10.2f}{base[1]:>15.1f}{'100%':>7}{base[2]:>12.1f}", flush=True)
    for r in radii:
        refine.SEED_CORE_RADIUS = r
        s, c, f = score(True)
        print(f"{'refine, radius ' + str(r):<18}{s:>10.2f}{c:>15.1f}{100 * c / base[1]:>6.1f}%{f:>12.1f}", flush=True)


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
