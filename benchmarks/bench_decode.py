"""Decoding candidates against invented colour, side by side on one model and one set of photos.

    python benchmarks/bench_decode.py --model runs/semantic-ft --photos pool/train --subset validation

Each photo (scaled to a short side of 256, as ``colorunet evaluate`` scores) goes
through the network once; its class scores are then decoded several ways:
the annealed mean at four temperatures; the annealed mean with its chroma shrunk
by (1 − H)^γ, H the entropy of the pixel's distribution over log n; and a per-pixel
temperature T + k·H. With ``--only calibrated``: the temperatures, each also with the
distribution divided by w(b)^α, w the model's rebalancing weights (a calibrated prior:
α = 1 undoes the rebalancing at decode time). For each: rebalanced AuC, AuC, PSNR, colourfulness (and its
share of the originals') and invented colour, pooled as ``evaluate`` pools them.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from colorunet.core.color import rgb_to_lab  # noqa: E402
from colorunet.core.decode import annealed_distribution  # noqa: E402
from colorunet.evaluation.evaluate import DEFAULT_EVAL_SIZE, evaluation_photos, scale_to_eval_size  # noqa: E402
from colorunet.core.images import open_image, to_float_rgb, to_uint8  # noqa: E402
from colorunet.evaluation.metrics import AccuracyCurve, colorfulness, false_color, psnr  # noqa: E402
from colorunet.inference.pipeline import get_model, predict  # noqa: E402
from colorunet.inference.working import recombine  # noqa: E402


def normalised_entropy(scores: torch.Tensor) -> torch.Tensor:
    """(B, 1, h, w) entropy of softmax(scores) over log n, in [0, 1]."""
    p = torch.softmax(scores, dim=1)
    return -(p * p.clamp_min(1e-12).log()).sum(1, keepdim=True) / np.log(scores.shape[1])


def candidates(centers: torch.Tensor, log_w: torch.Tensor, only: str | None = None):
    def expectation(p):
        return torch.einsum("bnhw,nc->bchw", p, centers)

    if only == "calibrated":
        for t in (0.38, 0.5, 0.7, 1.0):
            yield f"T={t}", lambda s, t=t: expectation(annealed_distribution(s, t))
            for a in (0.25, 0.5, 1.0):
                # The rebalanced loss's optimum is p(b|x)·w(b), renormalised: dividing by w^α
                # undoes a share α of the rebalancing at decode time (a calibrated prior).
                yield f"T={t}, p / w^{a}", lambda s, t=t, a=a: expectation(annealed_distribution(s - a * log_w, t))
        return

    for t in (0.38, 0.5, 0.7, 1.0):
        yield f"T={t}", lambda s, t=t: expectation(annealed_distribution(s, t))
    for t in (0.5, 0.7):
        for g in (0.5, 1.0, 2.0):
            yield (
                f"T={t}, chroma × (1-H)^{g}",
                lambda s, t=t, g=g: expectation(annealed_distribution(s, t)) * (1 - normalised_entropy(s)) ** g,
            )
        for k in (1.0, 2.0):
            yield (
                f"T={t} + {k}·H per pixel",
                lambda s, t=t, k=k: expectation(torch.softmax(s / (t + k * normalised_entropy(s)), dim=1)),
            )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="default")
    p.add_argument("--photos", type=Path, required=True)
    p.add_argument("--subset", choices=("all", "validation"), default="all")
    p.add_argument("--only", choices=("calibrated",), help="only the temperatures and the calibrated-prior candidates")
    args = p.parse_args()
    m = get_model(args.model)
    centers = torch.from_numpy(m.quantizer.centers)
    lam = (m.metadata.get("train_config") or {}).get("rebalance_lambda", 0.5)
    log_w = torch.from_numpy(np.log(m.quantizer.rebalance_weights(lam))).float()[None, :, None, None]
    data = []
    for path in evaluation_photos(args.photos, args.subset):
        rgb, _ = to_float_rgb(scale_to_eval_size(open_image(path), DEFAULT_EVAL_SIZE))
        true = to_uint8(rgb)
        data.append((predict(Image.fromarray(true), m), true / 255.0))
    truth_colour = np.mean([colorfulness(t) for _, t in data])
    print(f"# {args.model} on {len(data)} photos of {args.photos} ({args.subset}); originals' colourfulness {truth_colour:.1f}")
    print(f"{'decode':<28}{'rebal. AuC':>11}{'AuC':>8}{'PSNR':>7}{'colourful':>11}{'invented %':>12}")
    for name, decode in candidates(centers, log_w, args.only):
        curve, invented, colour, ps = AccuracyCurve(), [], [], []
        for pred, true in data:
            uv = F.interpolate(decode(pred.scores), size=pred.luma.shape, mode="bilinear", align_corners=False)[0].numpy()
            out = np.asarray(recombine(pred.luma, uv[0], uv[1], None, "yuv").convert("RGB"), dtype=np.float64) / 255
            pab, tab = rgb_to_lab(out)[..., 1:], rgb_to_lab(true)[..., 1:]
            curve.add_ab(pab, tab)
            invented.append(false_color(pab, tab))
            colour.append(colorfulness(out))
            ps.append(psnr(out, true))
        c = np.mean(colour)
        print(f"{name:<28}{curve.auc(True):>11.2f}{curve.auc():>8.2f}{np.mean(ps):>7.2f}{c:>6.1f} "
              f"({100 * c / truth_colour:3.0f}%)"
              f"{np.nanmean(invented):>9.1f}", flush=True)


if __name__ == "__main__":
    main()
