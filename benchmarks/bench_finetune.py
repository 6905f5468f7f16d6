"""Fine-tuning on an archive (``train --init default``) against the shipped model and a model trained from scratch.

    python benchmarks/bench_finetune.py ARCHIVE_DIR --work runs/finetune [--cast faded|magenta] [--budget 120]
        [--eval pool/eval] [--lr 5e-4 ...] [--init MODEL --tag=-NAME] [--scratch-preset semantic] [--temperatures T ...]
        [--not-in pool/train pool/eval]

The archive's colour photos (near-duplicates dropped) are split in two halves by a
hash of their names: the fine-tune half (``WORK/a``) and the held-out half
(``WORK/b``). With ``--cast`` both halves get the same strong colour cast, as a
faded colour print or one film stock gives a whole archive, in CIE Lab, the
shadows lifted: ``faded``, a* + 8 and b* + 22 (orange-yellow, an aged print's
yellowed paper and varnish); ``magenta``, a* + 20 and b* − 6 (a chromogenic
print whose cyan dye faded first, the commonest fading of 1970s prints).
Then, each for ``--budget`` seconds of training on this machine, one after the
other:

- ``ft``: ``colorunet train WORK/a --init default`` (the fine-tuning schedule), or
  one run per ``--lr`` given;
- ``scratch``: ``colorunet train WORK/a --preset wide`` (the shipped model's network,
  from random weights, its full learning rate).

Every model is scored with ``colorunet evaluate`` on the held-out half and on
``--eval`` (the open pool's evaluation photos): rebalanced AuC, PSNR, and the
invented-colour share. ``--kept-decode`` scores each fine-tune a second time
with the shipped model's decode chroma instead of the re-estimated one (the
same weights and temperature). ``--photos N`` trains on only the first N photos
of the fine-tune half; ``--ft-args`` passes more options to the fine-tunes
(``--tag=-NAME`` names their folders apart). ``--init MODEL`` fine-tunes another
model than the shipped one, and ``--scratch-preset`` trains another network from
scratch (``semantic``: the frozen ImageNet encoder, the rest from random
weights). ``--not-in DIR ...`` lists the archive's photos that are
near-duplicates of photos in those folders (a fair archive has none).
``--temperatures T ...`` also scores every model on the held-out half at each
of those temperatures: how much each run's own choice, made on its few
validation photos, cost it (a diagnosis, not a rule: it looks at the held-out
half). The validation loss each run reached on its own validation photos (a
tenth of the fine-tune half) is printed too: it is what the fine-tuning
learning rate was chosen by, never the held-out half.

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
from colorunet.core.images import ImageError, find_images, open_image, to_uint8  # noqa: E402
from colorunet.datasets.photo_filters import DuplicateIndex, flatten_alpha, perceptual_hash, photo_problem  # noqa: E402

#: The casts: Lab shift (a*, b*) of each; and how much the blacks are lifted (L* units).
CASTS = {"faded": (8.0, 22.0), "magenta": (20.0, -6.0)}
CAST_LIFT = 12.0


def with_cast(rgb: np.ndarray, cast: str) -> np.ndarray:
    """(H, W, 3) uint8 with a strong, consistent colour cast and lifted shadows."""
    shift = CASTS[cast]
    lab = rgb_to_lab(rgb.astype(np.float64) / 255.0)
    lab[..., 0] = CAST_LIFT + lab[..., 0] * (100.0 - CAST_LIFT) / 100.0
    lab[..., 1] += shift[0]
    lab[..., 2] += shift[1]
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
        if cast is not None:
            rgb = with_cast(rgb, cast)
        half = "a" if hashlib.sha256(path.stem.encode()).digest()[0] % 2 == 0 else "b"
        Image.fromarray(rgb).save(work / half / (path.stem + ".png"))
        kept[half] += 1
    print(f"archive: {kept['a']} photos to fine-tune on, {kept['b']} held out", file=sys.stderr)
    return a, b


def outside_init_classes(photos: Path, init: str) -> tuple[float, int]:
    """Share of the photos' pixels in grid cells that are none of the init model's classes (a fine-tune keeps those
    classes: such pixels train and decode as the nearest one), and how many of the cells a model trained from
    scratch on them would keep (their most frequent ones) the init model lacks."""
    from colorunet.core.quantize import Quantizer
    from colorunet.core.weights import load_model
    from colorunet.training.data import chroma_histogram

    q = load_model(init).quantizer
    hist = chroma_histogram((np.asarray(open_image(p).convert("RGB")) for p in sorted(find_images(photos))),
                            q.grid_size, space=q.space)
    own = Quantizer.fit(hist, q.num_classes).kept_cells
    return q.share_outside(hist), int((~np.isin(own, q.kept_cells)).sum())


def near_duplicates(halves: tuple[Path, ...], folders: list[Path]) -> list[tuple[str, str]]:
    """(archive photo, photo in ``folders``) pairs that are near-duplicates: photos a compared model trained on."""
    seen = DuplicateIndex()
    for folder in folders:
        for path in find_images(folder):
            try:
                seen.add(perceptual_hash(flatten_alpha(open_image(path))[0]), str(path))
            except ImageError as e:  # an unreadable file there is not the archive's business
                print(f"skipped {e}", file=sys.stderr)
    return [(p.name, match) for half in halves for p in sorted(find_images(half))
            if (match := seen.find(perceptual_hash(open_image(p).convert("RGB")))) is not None]


def first_photos(a: Path, n: int) -> Path:
    """A folder beside ``a`` holding its first ``n`` photos by name."""
    sub = a.parent / f"{a.name}-first{n}"
    if not sub.is_dir():
        sub.mkdir()
        for path in sorted(a.iterdir())[:n]:
            (sub / path.name).write_bytes(path.read_bytes())
    return sub


def with_init_decode(run: Path, init: str) -> Path:
    """A copy of a fine-tune's model that decodes each class to its init model's chroma, at the same temperature
    (a class the fine-tune grew, which the init model lacks, keeps its own)."""
    from colorunet.core.quantize import Quantizer
    from colorunet.core.weights import load_model, save_model

    out = run / "kept-decode.safetensors"
    if not out.exists():
        m, init_centers = load_model(run), load_model(init).quantizer.centers
        q = m.quantizer
        centers = q.centers.copy()
        centers[: len(init_centers)] = init_centers
        save_model(out, m.net, Quantizer(q.kept_cells, centers, q.prior, q.grid_size, q.space), extra=dict(m.metadata))
    return out


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
    p.add_argument("--cast", choices=tuple(CASTS))
    p.add_argument("--budget", type=float, default=120.0, help="seconds of training per model")
    p.add_argument("--steps", type=int, help="train every model for this many steps instead of --budget seconds: the same budget "
                                             "whatever else the machine is doing")
    p.add_argument("--eval", type=Path, default=Path("pool/eval"))
    p.add_argument(
        "--lr", type=float, nargs="*", default=[], help="fine-tune at these learning rates (default: the fine-tuning default)"
    )
    p.add_argument("--init-prior", choices=("keep", "refit"), default="refit",
                   help="the fine-tunes' --init-prior (default: refit, as train's)")
    p.add_argument("--init", default="default",
                   help="the model the fine-tunes start from (default: the shipped one; name the runs apart with --tag)")
    p.add_argument("--no-scratch", action="store_true")
    p.add_argument("--scratch-preset", default="wide",
                   help="the preset of the model trained from scratch (default: wide, the shipped model's network)")
    p.add_argument("--ft-args", default="", help="more train options for the fine-tunes, one string")
    p.add_argument("--scratch-args", default="", help="more train options for the model from scratch, one string "
                   "(e.g. \"--classes 40\", as many classes as a fine-tune grew to)")
    p.add_argument("--scratch-tag", default="", help="suffix of the model from scratch's folder name")
    p.add_argument("--tag", default="", help="suffix of the fine-tunes' folder names")
    p.add_argument("--seed", type=int, default=0, help="every run's --seed (runs of another seed get their own folders)")
    p.add_argument("--kept-decode", action="store_true",
                   help="also score each fine-tune with the init model's decode chroma: what re-estimating it adds")
    p.add_argument("--photos", type=int, help="train on only the first N photos of the fine-tune half (by name): how many "
                                               "colour photos an archivist needs; the held-out half stays whole")
    p.add_argument("--not-in", type=Path, nargs="*", default=[],
                   help="list the archive's photos that are near-duplicates of photos in these folders (the compared "
                        "models' training photos: a fair archive has none)")
    p.add_argument("--temperatures", type=float, nargs="*", default=[],
                   help="also score every model on the held-out half at each of these temperatures")
    args = p.parse_args()

    a, b = split_archive(args.archive, args.work, args.cast)
    if args.not_in:
        dupes = near_duplicates((a, b), args.not_in)
        print(f"near-duplicates of photos in {' '.join(map(str, args.not_in))}: {len(dupes)}")
        for name, match in dupes:
            print(f"  {name}  {match}")
    runs: dict[str, Path] = {}
    seed = f"-seed{args.seed}" if args.seed else ""
    if args.photos:
        a = first_photos(a, args.photos)
        seed = f"-{args.photos}photos{seed}"
    for lr in args.lr or [None]:
        name = ("ft" if lr is None else f"ft-lr{lr:g}") + ("-refit" if args.init_prior == "refit" else "") + args.tag + seed
        extra = ["--init", args.init, "--init-prior", args.init_prior, "--seed", args.seed, *args.ft_args.split()]
        extra += [] if lr is None else ["--lr", str(lr)]
        train(a, args.work / name, args.budget, args.steps, extra)
        runs[name] = args.work / name
    if not args.no_scratch:
        name = "scratch" + ("" if args.scratch_preset == "wide" else f"-{args.scratch_preset}") + args.scratch_tag + seed
        train(a, args.work / name, args.budget, args.steps,
              ["--preset", args.scratch_preset, "--seed", args.seed, *args.scratch_args.split()])
        runs[name] = args.work / name

    scores = args.work / "scores"
    scores.mkdir(exist_ok=True)
    share, new_cells = outside_init_classes(a, args.init)
    print(f"the fine-tune half: {share:.1%} of its pixels outside the init model's classes; {new_cells} of the "
          "classes a model from scratch keeps are not the init model's")
    rows = [("shipped", "default", float("nan"), 0)]
    if args.init != "default":
        rows.append((f"init{args.tag}", args.init, float("nan"), 0))
    rows += [(n, str(r), *final_val_loss(r)) for n, r in runs.items()]
    if args.kept_decode:
        for n, r in list(runs.items()):
            if n.startswith("ft"):
                rows.append((f"{n}-kept", str(with_init_decode(r, args.init)), *final_val_loss(r)))
    print(f"{'model':<22} {'steps':>6} {'val loss':>9} | {'held-out half':^26} | {'--eval photos':^26}")
    print(
        f"{'':<22} {'':>6} {'':>9} | {'rebal AuC':>9} {'PSNR':>6} {'invented':>9} | {'rebal AuC':>9} {'PSNR':>6} {'invented':>9}"
    )
    for name, model, val, steps in rows:
        held = score(model, b, scores / f"{name}_heldout.json")
        ev = score(model, args.eval, scores / f"{name}_eval.json")
        cells = [f"{m['auc_rebalanced']:9.2f} {m['psnr']:6.2f} {m['false_colour']:8.1f}%" for m in (held, ev)]
        print(f"{name:<22} {steps:>6} {val:>9.3f} | {cells[0]} | {cells[1]}")
    if args.temperatures:
        temperature_sweep(rows, b, scores, tuple(args.temperatures))


def temperature_sweep(rows: list[tuple], photos: Path, scores: Path, temperatures: tuple[float, ...]) -> None:
    """Each model's held-out rebalanced AuC at every temperature: how much its own choice (on its few validation
    photos: 8 on the food archive, 23 on the varied one) cost it. Not a rule a run can follow: it looks at the held-out
    half."""
    from colorunet.evaluation.temperature import choose_temperature

    print(f"\nheld-out rebalanced AuC by temperature (* the run's own choice)\n{'model':<22} "
          + " ".join(f"{t:>7g}" for t in temperatures) + f" {'best':>7}")
    for name, model, _, _ in rows:
        cache = scores / f"{name}_temperatures.json"
        done = json.loads(cache.read_text()) if cache.exists() else {}
        if done.get("temperatures") != list(temperatures):
            choice = choose_temperature(sorted(find_images(photos)), model, candidates=temperatures)
            done = {"temperatures": list(temperatures), "auc_rebalanced": [s.auc_rebalanced for s in choice.scores]}
            cache.write_text(json.dumps(done))
        own = json.loads((scores / f"{name}_heldout.json").read_text())["temperature"]
        cells = [f"{a:6.2f}{'*' if abs(t - own) < 1e-9 else ' '}" for t, a in zip(temperatures, done["auc_rebalanced"])]
        print(f"{name:<22} " + " ".join(cells) + f" {max(done['auc_rebalanced']):7.2f}")


if __name__ == "__main__":
    main()
