"""``colorunet evaluate``: colorize the luminance of colour photos and score against the originals.

Every photo is first scaled down (Lanczos) so its short side is ``eval_size``
(256 by default, as in Zhang et al.'s test protocol; photos already smaller are
kept as they are; ``eval_size=0`` scores at full resolution), then goes through
the same ``pipeline.colorize_full`` a user runs and is compared with that
scaled original. A fixed size makes every photo weigh about the same in the
pixel-pooled numbers, whatever its resolution.

Pooling, metric by metric:
- ``auc``, ``auc_rebalanced``: over the pixels of all photos together (metrics.py).
- ``psnr``, ``ssim``, ``colorfulness``, ``colorfulness_true``, ``delta_colorfulness``,
  ``stain``: the mean over photos of each photo's value.
- ``false_color``: the mean over the photos with at least 1% truly neutral pixels.

The "gray" model is the do-nothing baseline: the photo's own luminance, no chroma.
"""

from __future__ import annotations

import csv
import html
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..core.atomic import atomic_path, write_text_atomic
from ..core.color import is_grayscale, luma_chroma_to_rgb, rgb_to_lab, rgb_to_luma
from ..core.splits import split_paths
from ..core.images import ImageError, find_images, open_image, save_image, to_float_rgb, to_uint8
from .metrics import AUC_THRESHOLDS, AccuracyCurve, auc_of_errors, colorfulness, false_color, psnr, ssim, stain_fraction
from ..inference.pipeline import DEFAULT_WORKING_SIZE, colorize_full, get_model, reference_bias_for
from ..inference.reference import strength_for

#: Model names that are baselines rather than networks: "gray" (no colour) and
#: "mean-color" (every pixel gets the mean chroma of the shipped model's training
#: photos, Σ P̂(b)·centre(b) from its quantiser: the best single guess a model
#: could make without looking at the photo).
BASELINES = ("gray", "mean-color")
#: Baseline names of earlier versions, still accepted.
BASELINE_ALIASES = {"mean-colour": "mean-color"}
#: Keys of metrics.json under their earlier spelling, written too for reports that read them: old name -> name.
METRIC_ALIASES = {"false_colour": "false_color", "false_colour_photos": "false_color_photos"}
THUMB = 256
#: Short side every photo is scored at (Zhang et al.'s ctest protocol scores at 256); 0: full resolution.
DEFAULT_EVAL_SIZE = 256
PER_IMAGE_FIELDS = (
    "photo",
    "width",
    "height",
    "auc",
    "psnr",
    "ssim",
    "colorfulness",
    "colorfulness_true",
    "stain",
    "false_color",
)


@dataclass
class Evaluation:
    metrics: dict
    per_image: list[dict] = field(default_factory=list)
    curves: dict[str, list[float]] = field(default_factory=dict)


def evaluation_photos(folder: Path, subset: str = "all", val_fraction: float = 0.1) -> list[Path]:
    """The photos of ``folder``; ``subset="validation"`` takes the ones training holds out."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageError(f"{folder}: not a folder of photos")
    paths = find_images(folder)
    if subset == "validation":
        paths = split_paths(paths, folder, val_fraction)[1]
    elif subset != "all":
        raise ValueError(f"subset must be 'all' or 'validation', got {subset!r}")
    if not paths:
        if subset == "validation":
            raise ImageError(f"{folder}: none of its photos falls in the validation split (a hash of each name picks "
                             f"{val_fraction:.0%} of them); too few photos to hold any out")
        raise ImageError(f"{folder}: no photos to evaluate")
    return paths


def _simulated_hints(true_rgb: np.ndarray, k: int, index: int) -> dict:
    """k point hints at random pixels (seeded per photo), with the original's colour there."""
    rng = np.random.default_rng((0x4A17, index, k))
    h, w = true_rgb.shape[:2]
    ys, xs = rng.integers(0, h, k), rng.integers(0, w, k)
    colours = to_uint8(true_rgb[ys, xs])
    return {"points": [{"x": int(x), "y": int(y), "color": "#%02x%02x%02x" % tuple(c)} for x, y, c in zip(xs, ys, colours)]}


def scale_to_eval_size(img: Image.Image, eval_size: int) -> Image.Image:
    """The photo scaled down (Lanczos) so its short side is ``eval_size``; smaller photos and 0 keep it as it is."""
    short = min(img.size)
    if eval_size <= 0 or short <= eval_size:
        return img
    s = eval_size / short
    size = (max(eval_size, round(img.width * s)), max(eval_size, round(img.height * s)))
    return img.resize(size, Image.Resampling.LANCZOS)


def evaluate(
    photos: list[Path],
    model: str = "default",
    temperature: float | None = None,
    mode: str = "annealed",
    working_size: int = DEFAULT_WORKING_SIZE,
    report: Path | None = None,
    progress: bool = True,
    input_noise: float = 0.0,
    refine: bool = False,
    hint_points: int = 0,
    eval_size: int = DEFAULT_EVAL_SIZE,
    reference: str | Path | dict | None = None,
    reference_strength: float | None = None,
    bias: np.ndarray | None = None,
) -> Evaluation:
    """Score ``model`` (a model spec, or "gray") on colour photos; write a report folder if asked.

    ``input_noise`` adds Gaussian noise of that standard deviation to the luminance
    the model is given (film grain, a noisy scan) while scores are still taken
    against the clean original: the robustness the paper's noise augmentation is for.
    ``refine`` scores ``colorize --refine``; ``hint_points`` = k simulates a user who
    gives k hints at random pixels with the original's colours there (the protocol
    of Zhang et al. 2017, "Real-Time User-Guided Image Colorization", Fig. 5).
    ``eval_size`` is the short side photos are scored at (0: full resolution).
    ``reference`` scores ``colorize --reference``: a photo used for every photo, "self"
    (each photo's own original: the oracle, the most a palette can give), or a dict
    from a photo's path to its reference's path. ``bias`` (n,) is added to every
    pixel's class logits before decoding, on top of any reference's (a decode
    candidate such as a calibrated prior, benchmarks/bench_semantic_ablation.py).
    """
    from tqdm import tqdm

    model = BASELINE_ALIASES.get(str(model), model) if model is not None else model
    baseline = str(model) if str(model) in BASELINES else None
    m = None if baseline else get_model(model)
    mean_uv = None
    if baseline == "mean-color":
        q = get_model("default").quantizer
        mean_uv = (q.prior[:, None] * q.centers).sum(0)
    if m is not None and temperature is None:
        temperature = m.temperature
    reference_strength = strength_for(reference, reference_strength)
    fixed_bias = None
    if bias is not None and m is None:
        raise ValueError(f"the {baseline} baseline has no colour classes to bias")
    if reference is not None:
        if m is None:
            raise ValueError(f"--reference: the {baseline} baseline has no colour classes to re-weight")
        if not isinstance(reference, dict) and str(reference) != "self":
            fixed_bias = reference_bias_for(m, reference, reference_strength)  # once, and any error before the first photo
    curve = AccuracyCurve()
    rows: list[dict] = []
    skipped: list[str] = []
    if report is not None:
        (Path(report) / "images").mkdir(parents=True, exist_ok=True)
    for index, path in enumerate(
        tqdm(photos, desc="evaluating", unit="photo", disable=not progress, file=sys.stderr, leave=False)
    ):
        try:
            img = open_image(path)
        except ImageError as e:
            skipped.append(str(e))
            continue
        true_rgb, _ = to_float_rgb(img)
        if is_grayscale(true_rgb):
            skipped.append(f"{path}: grayscale original, nothing to compare")
            continue
        # scaled as 8-bit RGB, whatever the file's mode (palette, 16-bit, float)
        true_rgb = np.asarray(scale_to_eval_size(Image.fromarray(to_uint8(true_rgb)), eval_size), dtype=np.float64) / 255
        given: np.ndarray = to_uint8(true_rgb)
        if input_noise > 0:
            luma = rgb_to_luma(true_rgb) + np.random.default_rng((0xE7A1, index)).normal(0, input_noise, true_rgb.shape[:2])
            given = to_uint8(np.clip(luma, 0, 1))  # (H, W) grey, as a noisy B/W scan would be
        conf = None
        if baseline is not None:
            grey = rgb_to_luma(given.astype(np.float64) / 255) if given.ndim == 3 else given / 255
            if mean_uv is None:
                pred = np.repeat(grey[..., None], 3, axis=2)
            else:
                u, v = (np.full(grey.shape, c, dtype=np.float32) for c in mean_uv)
                pred = to_uint8(luma_chroma_to_rgb(grey, u, v)).astype(np.float64) / 255
        else:
            hints = _simulated_hints(true_rgb, hint_points, index) if hint_points > 0 else None
            photo_bias = fixed_bias
            if reference is not None and fixed_bias is None:
                ref = to_uint8(true_rgb) if str(reference) == "self" else reference[path]
                photo_bias = reference_bias_for(m, ref, reference_strength)
            if bias is not None:
                photo_bias = bias if photo_bias is None else photo_bias + bias
            res = colorize_full(
                Image.fromarray(given),
                m,
                temperature,
                mode,
                working_size,
                confidence=report is not None,
                refine=refine,
                hints=hints,
                bias=photo_bias,
            )
            pred = np.asarray(res.image.convert("RGB"), dtype=np.float64) / 255
            conf = res.confidence_top
        pred_ab, true_ab = rgb_to_lab(pred)[..., 1:], rgb_to_lab(true_rgb)[..., 1:]
        err = curve.add_ab(pred_ab, true_ab)
        name = path.name
        row = {
            "photo": name,
            "width": true_rgb.shape[1],
            "height": true_rgb.shape[0],
            "auc": auc_of_errors(err),
            "psnr": psnr(pred, true_rgb),
            "ssim": ssim(pred, true_rgb),
            "colorfulness": colorfulness(pred),
            "colorfulness_true": colorfulness(true_rgb),
            "stain": stain_fraction(pred),
            "false_color": false_color(pred_ab, true_ab),
        }
        rows.append(row)
        if report is not None:
            _save_thumbs(Path(report) / "images", len(rows) - 1, true_rgb, pred, conf)
    if not rows:
        raise ImageError("no colour photos could be evaluated" + (f" ({skipped[0]})" if skipped else ""))
    def mean(key: str) -> float:
        values = [r[key] for r in rows if not math.isnan(r[key])]
        return float(np.mean(values)) if values else float("nan")

    metrics = {
        "model": str(model) if m is None else m.name,
        "temperature": temperature if mode == "annealed" and m is not None else None,
        "mode": mode if m is not None else None,
        "working_size": working_size,
        "eval_size": eval_size,
        "input_noise": input_noise,
        "photos": len(rows),
        "skipped": len(skipped),
        "auc": curve.auc(),
        "auc_rebalanced": curve.auc(rebalanced=True),
        "psnr": mean("psnr"),
        "ssim": mean("ssim"),
        "colorfulness": mean("colorfulness"),
        "colorfulness_true": mean("colorfulness_true"),
        "delta_colorfulness": float(np.mean([abs(r["colorfulness"] - r["colorfulness_true"]) for r in rows])),
        "stain": mean("stain"),
        "false_color": mean("false_color"),
        "false_color_photos": sum(not math.isnan(r["false_color"]) for r in rows),
        "refine": refine,
        "hint_points": hint_points,
        "reference": None if reference is None else "per photo" if isinstance(reference, dict) else str(reference),
        "reference_strength": None if reference is None else reference_strength,
        "class_bias": bias is not None,
    }
    metrics |= {old: metrics[new] for old, new in METRIC_ALIASES.items()}
    ev = Evaluation(metrics, rows, {"plain": curve.curve().tolist(), "rebalanced": curve.curve(rebalanced=True).tolist()})
    if report is not None:
        write_report(Path(report), ev, skipped)
    return ev


def _save_thumbs(folder: Path, i: int, true_rgb: np.ndarray, pred: np.ndarray, conf: np.ndarray | None) -> None:
    def thumb(a: np.ndarray) -> Image.Image:
        im = Image.fromarray(to_uint8(a))
        im.thumbnail((THUMB, THUMB), Image.Resampling.LANCZOS)
        return im

    save_image(thumb(np.repeat(rgb_to_luma(true_rgb)[..., None], 3, 2)), folder / f"{i:04d}_gray.jpg")
    save_image(thumb(pred), folder / f"{i:04d}_output.jpg")
    save_image(thumb(true_rgb), folder / f"{i:04d}_original.jpg")
    if conf is not None:
        save_image(thumb(conf), folder / f"{i:04d}_confidence.jpg")  # white = confident


def write_report(report: Path, ev: Evaluation, skipped: list[str]) -> None:
    """metrics.json, per_image.csv, curves.png and index.html (opens from disk, no server)."""
    write_text_atomic(report / "metrics.json", json.dumps(ev.metrics, indent=2) + "\n")
    with atomic_path(report / "per_image.csv") as t, open(t, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=PER_IMAGE_FIELDS)
        w.writeheader()
        w.writerows({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()} for r in ev.per_image)
    plot_curves({ev.metrics["model"]: ev.curves}, report / "curves.png")
    m = ev.metrics
    summary = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(_fmt(v))}</td></tr>" for k, v in m.items())
    rows = []
    for i, r in enumerate(ev.per_image):
        cells = "".join(
            f'<td><img src="images/{i:04d}_{kind}.jpg" alt="{kind}" '
            'loading="lazy"></td>' for kind in ("gray", "output", "original")
        )
        conf = (
            f'<td><img src="images/{i:04d}_confidence.jpg" alt="confidence" loading="lazy"></td>'
            if (report / "images" / f"{i:04d}_confidence.jpg").exists()
            else "<td></td>"
        )
        invented = "n/a" if math.isnan(r["false_color"]) else f"{r['false_color']:.1f}%"
        stats = (f"AuC {r['auc']:.1f}%<br>PSNR {r['psnr']:.2f} dB<br>colorfulness {r['colorfulness']:.1f} / "
                 f"{r['colorfulness_true']:.1f}"
                 f"<br>invented colour {invented}")
        rows.append(f"<tr><td>{html.escape(r['photo'])}<br><small>{stats}</small></td>{cells}{conf}</tr>")
    skipped_html = "".join(f"<li>{html.escape(s)}</li>" for s in skipped)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>colorunet evaluation: {html.escape(str(m["model"]))}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse}}
td,th{{padding:4px 8px;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}}\
img{{max-width:min(256px,17vw);display:block}}\
td:first-child{{overflow-wrap:anywhere;min-width:12em;max-width:18em}}</style></head>
<body><h1>colorunet evaluation</h1>
<table>{summary}</table>
<p><small>AuC and rebalanced AuC: over the pixels of all photos together; the others: mean over photos
(invented colour: over the photos with at least 1% truly neutral pixels). \
Photos scored at a short side of {html.escape(str(m.get("eval_size") or "full resolution"))}.</small></p>
<h2>Cumulative accuracy (share of pixels with Lab ab error ≤ t)</h2>\
<img src="curves.png" alt="accuracy curves" style="max-width:640px">
<h2>Photos: grey input | output | original | confidence (white = sure)</h2>
<table>{"".join(rows)}</table>
{f"<h2>Skipped</h2><ul>{skipped_html}</ul>" if skipped else ""}
</body></html>
"""
    write_text_atomic(report / "index.html", page)


def _fmt(v) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def plot_curves(curves: dict[str, dict[str, list[float]]], path: Path) -> None:
    """Plot plain and rebalanced accuracy curves of one or more models."""
    try:
        import matplotlib
    except ImportError:
        from ..core.errors import ColorunetError

        raise ColorunetError("the report's plot needs the 'eval' extra: pip install 'colorunet[eval]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for name, c in curves.items():
        for ax, kind in zip(axes, ("plain", "rebalanced")):
            ax.plot(AUC_THRESHOLDS, 100 * np.asarray(c[kind]), label=f"{name} (AuC {100 * np.mean(c[kind]):.1f}%)")
    for ax, title in zip(axes, ("per pixel", "class-rebalanced")):
        ax.set_title(title)
        ax.set_xlabel("threshold t (Lab ab)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("pixels within t (%)")
    fig.tight_layout()
    with atomic_path(path) as t:
        fig.savefig(t, format="png", dpi=100)
    plt.close(fig)
