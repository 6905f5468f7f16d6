"""Pack a photo folder into one compact tar of downsized JPEGs (to carry to a training machine).

    python scripts/pack_photos.py POOL/train photos.tar --short-side 320

Each photo keeps its relative path (extension .jpg); photos whose short side is
above ``--short-side`` are scaled down to it (Lanczos), smaller ones keep their
size. Training resizes photos to ``--load-size`` (256 by default) anyway, so a
pack with a short side above that trains the same model within noise; it is
not bit-identical to training on the originals.
"""

import argparse
import io
import tarfile
from pathlib import Path

from PIL import Image

from colorunet.core.images import find_images


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("src", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--short-side", type=int, default=320)
    p.add_argument("--quality", type=int, default=92)
    args = p.parse_args()
    with tarfile.open(args.out, "w") as tar:
        for path in find_images(args.src):
            img = Image.open(path).convert("RGB")
            w, h = img.size
            s = args.short_side / min(w, h)
            if s < 1:
                img = img.resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.LANCZOS)
            buf = io.BytesIO()
            img.save(buf, format="JPEG", quality=args.quality)
            info = tarfile.TarInfo(path.relative_to(args.src).with_suffix(".jpg").as_posix())
            info.size = buf.tell()
            info.mtime = 0
            buf.seek(0)
            tar.addfile(info, buf)
    print(f"{args.out}: {args.out.stat().st_size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
