"""Fine-tuning on an archive (``train --init default``) against the shipped model and a model trained from scratch.

    python benchmarks/bench_finetune.py ARCHIVE_DIR --work runs/finetune [--cast faded] [--budget 120]
        [--eval pool/eval] [--lr 5e-4 ...]

The archive's colour photos (near-duplicates dropped) are split in two halves by a
hash of their names: the fine-tune half (``WORK/a``) and the held-out half
(``WORK/b``). With ``--cast faded`` both halves get the same strong colour cast,
as a faded colour print or one film stock gives a whole archive: in CIE Lab,
a* + 8 and b* + 22 (orange-yellow), the shadows lifted. Then, each for
``--budget`` seconds of training on this machine, one after the other:

- ``ft``: ``colorunet train WORK/a --init default`` (the fine-tuning schedule), or
  one run per ``--lr`` given;
- ``scratch``: ``colorunet train WORK/a --preset wide`` (the shipped model's network,
  from random weights, its full learning rate).

Every model is scored with ``colorunet evaluate`` on the held-out half and on
``--eval`` (the open pool's evaluation photos): rebalanced AuC, PSNR, and the
invented-colour share. The validation loss each run reached on its own
validation photos (a tenth of the fine-tune half) is printed too: it is what the
fine-tuning learning rate was chosen by, never the held-out half.

Only the shape of the results carries across machines: how many steps fit in the
budget depends on the CPU (2-core development machine: see docs/finetune.md).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from colorunet.core.color import lab_to_rgb, rgb_to_lab  # noqa: E402
from colorunet.core.images import find_images, open_image, to_uint8  # noqa: E402
from colorunet.datasets.photo_filters import DuplicateIndex, flatten_alpha, perceptual_hash, photo_problem  # noqa: E402

#: The faded-print cast: Lab shift (a*, b*) and how much the blacks are lifted (L* units).
CAST_AB = (8.0, 22.0)
CAST_LIFT = 12.0


def faded(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 with a strong, consistent warm cast and lifted shadows."""
    lab = rgb_to_lab(rgb.astype(np.float64) / 255.0)
    lab[..., 0] = CAST_LIFT + lab[..., 0] * (100.0 - CAST_LIFT) / 100.0
    lab[..., 1] += CAST_AB[0]
    lab[..., 2] += CAST_AB[1]
    return to_uint8(np.clip(lab_to_rgb(lab), 0, 1))


def split_archive(src: Path, work: Path, cast: str | None) -> tuple[Path, Path]:
    a, b = work / "a", work / "b"
    if a.is_dir() and b.is_dir() and any(a.iterdir()):
        return a, b
    a.mkdir(parents=True, exist_ok=True)
    b.mkdir(parents=True, exist_ok=True)
    seen = DuplicateIndex()
    kept = {"a": 0, "b": 0}
    for path in find_images(src):
        img = open_image(path)
        if photo_problem(img):
            continue
        rgb_img, _ = flatten_alpha(img)
        h = perceptual_hash(rgb_img)
        if seen.find(h):
            continue
        seen.add(h, path.name)
        rgb = np.asarray(rgb_img)
        if cast == "faded":
            rgb = faded(rgb)
        half = "a" if hashlib.sha256(path.stem.encode()).digest()[0] % 2 == 0 else "b"
        Image.fromarray(rgb).save(work / half / (path.stem + ".png"))
        kept[half] += 1
    print(f"archive: {kept['a']} photos to fine-tune on, {kept['b']} held out", file=sys.stderr)
    return a, b


def colorunet(*args) -> None:
    subprocess.run([sys.executable, "-m", "colorunet", *map(str, args)], check=True)


def train(photos: Path, out: Path, budget: float, steps: int | None, extra: list[str]) -> None:
    if (out / "model.safetensors").exists():
        return
    limit = ["--steps", steps] if steps else ["--time-budget", budget]
    colorunet("train", photos, "--out", out, *limit, "--quiet", *extra)


def final_val_loss(run: Path) -> tuple[float, int]:
    rows = list(csv.DictReader(open(run / "log.csv")))
    vals = [(float(r["val_loss"]), int(r["step"])) for r in rows if r.get("val_loss")]
    steps = int(rows[-1]["step"]) if rows else 0
    return (vals[-1][0] if vals else float("nan")), steps


def score(model: str, photos: Path, out: Path) -> dict:
    if not out.exists():
        r = subprocess.run([sys.executable, "-m", "colorunet", "evaluate", photos, "--model", model, "-q"],
                           check=True, capture_output=True, text=True)
        out.write_text(r.stdout)
    return json.loads(out.read_text())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("archive", type=Path)
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--cast", choices=("faded",))
    p.add_argument("--budget", type=float, default=120.0, help="seconds of training per model")
    p.add_argument("--steps", type=int, help="train every model for this many steps instead of --budget seconds: the same budget "
                                             "whatever else the machine is doing")
    p.add_argument("--eval", type=Path, default=Path("pool/eval"))
    p.add_argument(
        "--lr", type=float, nargs="*", default=[], help="fine-tune at these learning rates (default: the fine-tuning default)"
    )
    p.add_argument("--init-prior", choices=("keep", "refit"), default="refit",
                   help="the fine-tunes' --init-prior (default: refit, as train's)")
    p.add_argument("--no-scratch", action="store_true")
    p.add_argument("--seed", type=int, default=0, help="every run's --seed (runs of another seed get their own folders)")
    args = p.parse_args()

    a, b = split_archive(args.archive, args.work, args.cast)
    runs: dict[str, Path] = {}
    seed = f"-seed{args.seed}" if args.seed else ""
    for lr in args.lr or [None]:
        name = ("ft" if lr is None else f"ft-lr{lr:g}") + ("-refit" if args.init_prior == "refit" else "") + seed
        extra = ["--init", "default", "--init-prior", args.init_prior, "--seed", args.seed]
        extra += [] if lr is None else ["--lr", str(lr)]
        train(a, args.work / name, args.budget, args.steps, extra)
        runs[name] = args.work / name
    if not args.no_scratch:
        train(a, args.work / f"scratch{seed}", args.budget, args.steps, ["--preset", "wide", "--seed", args.seed])
        runs[f"scratch{seed}"] = args.work / f"scratch{seed}"

    scores = args.work / "scores"
    scores.mkdir(exist_ok=True)
    rows = [("shipped", "default", float("nan"), 0)] + [(n, str(r), *final_val_loss(r)) for n, r in runs.items()]
    print(f"{'model':<22} {'steps':>6} {'val loss':>9} | {'held-out half':^26} | {'--eval photos':^26}")
    print(
        f"{'':<22} {'':>6} {'':>9} | {'rebal AuC':>9} {'PSNR':>6} {'invented':>9} | {'rebal AuC':>9} {'PSNR':>6} {'invented':>9}"
    )
    for name, model, val, steps in rows:
        held = score(model, b, scores / f"{name}_heldout.json")
        ev = score(model, args.eval, scores / f"{name}_eval.json")
        cells = [f"{m['auc_rebalanced']:9.2f} {m['psnr']:6.2f} {m['false_colour']:8.1f}%" for m in (held, ev)]
        print(f"{name:<22} {steps:>6} {val:>9.3f} | {cells[0]} | {cells[1]}")


if __name__ == "__main__":
    main()
