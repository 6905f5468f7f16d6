"""What ``--reference`` does to the colours, on the open pool's evaluation photos.

    python benchmarks/bench_reference.py [--eval pool/eval] [--strengths 0.5 1 2]
    python benchmarks/bench_reference.py --figure docs/reference_example.jpg --photo PHOTO --references R1 R2 R3

The first form scores the shipped model (``colorunet evaluate``'s metrics) with:

- no reference;
- a flat red reference (mean a* of the results, to show the palette is followed);
- a reference of the same scene type: another evaluation photo from the same
  hand-made group below (aerial, street, fruit, tabletop, animal), the next one
  in the group, never the photo itself;
- a reference of another scene type: the photo at the same place in the next
  group (the control: does any colour photo help, or only a fitting one?);
- the photo's own original ("self", the oracle: the most a palette can give).

The groups were written down from the photos' content before any measurement.
Photos in no group (graf1, messi5) are left out of the scene-type rows only.
The second form draws one photo colorized without a reference and with each of
three references (the README's example).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from colorunet.core.color import rgb_to_lab  # noqa: E402
from colorunet.evaluation.evaluate import evaluate, evaluation_photos  # noqa: E402

GROUPS = {
    "aerial": ["aero1", "aero3"],
    "street": [
        "building",
        "home",
        "leuvenA",
        "licenseplate_motion",
        "scenetext01",
        "scenetext03",
        "scenetext04",
        "scenetext05",
        "scenetext06",
    ],
    "fruit": ["apple", "fruits", "orange"],
    "tabletop": ["board", "ela_original", "left", "rubberwhale1", "stuff"],
    "animal": ["aloeL", "baboon", "chicky_512", "squirrel_cls"],
}


def short(p: Path) -> str:
    return p.stem.split("__")[-1]


def scene_references(photos: list[Path]) -> tuple[dict, dict]:
    """(same type, other type): photo → reference, for the photos in a group."""
    by_name = {short(p): p for p in photos}
    groups = [[by_name[n] for n in names if n in by_name] for names in GROUPS.values()]
    groups = [g for g in groups if len(g) >= 2]
    same, other = {}, {}
    for gi, g in enumerate(groups):
        nxt = groups[(gi + 1) % len(groups)]
        for i, p in enumerate(g):
            same[p] = g[(i + 1) % len(g)]
            other[p] = nxt[i % len(nxt)]
    return same, other


def mean_a_star(photos: list[Path], reference, strength: float) -> float:
    from colorunet.evaluation.evaluate import scale_to_eval_size
    from colorunet.inference.pipeline import colorize_full, reference_bias_for, get_model

    m = get_model("default")
    bias = None if reference is None else reference_bias_for(m, reference, strength)
    values = []
    for p in photos:
        img = scale_to_eval_size(Image.open(p).convert("RGB"), 256)
        out = colorize_full(img, m, bias=bias).image
        values.append(rgb_to_lab(np.asarray(out, np.float64) / 255)[..., 1].mean())
    return float(np.mean(values))


def table(eval_dir: Path, strengths: list[float]) -> None:
    photos = evaluation_photos(eval_dir)
    same, other = scene_references(photos)
    grouped = sorted(same)
    red = Image.new("RGB", (64, 64), (200, 30, 30))
    print(f"{len(photos)} photos, {len(grouped)} of them in a scene group")
    print(
        f"mean a* of the results: no reference {mean_a_star(photos, None, 1):.1f}, "
        + ", ".join(f"red reference at γ = {g:g} {mean_a_star(photos, red, g):.1f}" for g in strengths)
    )

    def row(label: str, ev) -> None:
        m = ev.metrics
        print(
            f"{label:<34} {m['photos']:>6} {m['auc_rebalanced']:>10.2f} {m['auc']:>7.2f} {m['psnr']:>6.2f} "
            f"{m['colorfulness'] / m['colorfulness_true']:>9.0%} {m['false_colour']:>8.1f}%"
        )

    print(f"{'':<34} {'photos':>6} {'rebal AuC':>10} {'AuC':>7} {'PSNR':>6} {'colourful':>9} {'invented':>9}")
    row("all photos, no reference", evaluate(photos, progress=False))
    for g in strengths:
        row(f"all photos, self (oracle), γ={g:g}", evaluate(photos, progress=False, reference="self", reference_strength=g))
    row("grouped photos, no reference", evaluate(grouped, progress=False))
    for g in strengths:
        row(f"grouped, same scene type, γ={g:g}", evaluate(grouped, progress=False, reference=same, reference_strength=g))
        row(f"grouped, other scene type, γ={g:g}", evaluate(grouped, progress=False, reference=other, reference_strength=g))


def figure(out: Path, photo: Path, references: list[Path], strength: float) -> None:
    from colorunet.inference.pipeline import colorize_full

    side = 320
    grey = Image.open(photo).convert("L")
    grey.thumbnail((side, side))
    tiles = [("black and white", grey.convert("RGB")), ("no reference", colorize_full(grey).image)]
    for r in references:
        tiles.append((f"like {r.stem.split('__')[-1][:24]}", colorize_full(grey, reference=r, reference_strength=strength).image))
    w, h = tiles[0][1].size
    thumb = 96
    sheet = Image.new("RGB", (len(tiles) * (w + 8), h + thumb + 40), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (label, im) in enumerate(tiles):
        x = i * (w + 8)
        sheet.paste(im, (x, 0))
        draw.text((x + 4, h + 4), label, fill="black")
        if i >= 2:
            ref = Image.open(references[i - 2]).convert("RGB")
            ref.thumbnail((thumb, thumb))
            sheet.paste(ref, (x + 4, h + 20))
    sheet.save(out, quality=90)
    print(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--eval", type=Path, default=Path("pool/eval"))
    p.add_argument("--strengths", type=float, nargs="+", default=[0.5, 1.0, 2.0])
    p.add_argument("--figure", type=Path)
    p.add_argument("--photo", type=Path)
    p.add_argument("--references", type=Path, nargs="*")
    p.add_argument("--strength", type=float, default=1.0)
    args = p.parse_args()
    if args.figure:
        return figure(args.figure, args.photo, args.references, args.strength)
    table(args.eval, args.strengths)


if __name__ == "__main__":
    main()
