"""A picture of an evaluation report: rows of grey input | output | original.

    python scripts/eval_grid.py REPORT_DIR docs/eval_grid.jpg --every 5

Takes every k-th photo of the report in file order (no picking by result).
"""

import argparse
from pathlib import Path

from PIL import Image


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("report", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--every", type=int, default=5)
    p.add_argument("--height", type=int, default=160)
    args = p.parse_args()
    images = args.report / "images"
    n = len(list(images.glob("*_original.jpg")))
    rows = []
    for i in range(0, n, args.every):
        cells = [Image.open(images / f"{i:04d}_{kind}.jpg").convert("RGB") for kind in ("gray", "output", "original")]
        cells = [c.resize((round(c.width * args.height / c.height), args.height), Image.Resampling.LANCZOS) for c in cells]
        rows.append(cells)
    gap = 4
    width = max(sum(c.width for c in r) + gap * 2 for r in rows)
    sheet = Image.new("RGB", (width, len(rows) * (args.height + gap) - gap), "white")
    for j, r in enumerate(rows):
        x = 0
        for c in r:
            sheet.paste(c, (x, j * (args.height + gap)))
            x += c.width + gap
    sheet.save(args.out, quality=88)
    print(args.out, sheet.size)


if __name__ == "__main__":
    main()
