"""How fast training samples come out of tar shards, against a folder of the same photos.

    python benchmarks/bench_shards.py                     # 400 synthetic 500×375 JPEGs (ImageNet's typical size)
    python benchmarks/bench_shards.py --photos DIR --workers 2

Shards are decoded on demand (a folder is decoded once, up front, and kept in
memory), so with shards the data loader's decoding is what feeds the model.
This prints, from one run: photos/s decoded by one core from the folder and from
the shards (the seek + read cost of a record, next to the decode) as they are
and shrunk by ``data shard --short-side``, and the crops/s the training loader
delivers from the shrunk shards with ``--workers`` processes —
the number to set against a GPU's images/s (docs/training.md, "Training at scale") to
choose the worker count.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from colorunet.core.color import is_grayscale  # noqa: E402
from colorunet.training.data import CropBatches, chroma_histogram, load_photo  # noqa: E402
from colorunet.core.images import find_images  # noqa: E402
from colorunet.core.quantize import Quantizer  # noqa: E402
from colorunet.training.shards import ShardPhotos, split_records, write_shards  # noqa: E402


def make_photos(folder: Path, n: int) -> Path:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        base = rng.uniform(0, 1, (6, 8, 3))
        img = Image.fromarray((base * 255).astype(np.uint8)).resize((500, 375), Image.Resampling.BICUBIC)
        noisy = np.clip(np.asarray(img, dtype=np.int16) + rng.integers(-20, 20, (375, 500, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(folder / f"photo_{i:05d}.jpg", quality=90)
    return folder


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--photos", type=Path, help="folder of photos (default: synthetic JPEGs)")
    p.add_argument("--count", type=int, default=400, help="synthetic photos to make (default: %(default)s)")
    p.add_argument("--load-size", type=int, default=256)
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batches", type=int, default=30)
    args = p.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        src = args.photos or make_photos(work / "photos", args.count)
        paths = find_images(src)
        t = time.perf_counter()
        write_shards(src, work / "shards", shard_size=100, progress=False)
        t_shard = time.perf_counter() - t

        t = time.perf_counter()
        for path in paths:  # as the trainer loads a folder: decode, resize, grey test
            is_grayscale(load_photo(path, args.load_size, args.crop))
        folder_rate = len(paths) / (time.perf_counter() - t)

        write_shards(src, work / "small", shard_size=100, short_side=args.load_size, progress=False)
        rates = {}
        for name in ("shards", "small"):
            photos = ShardPhotos(split_records(work / name, 0.0)[0], args.load_size, args.crop, seed=0)
            t = time.perf_counter()
            for i in range(len(photos)):
                photos[i]
            rates[name] = len(photos) / (time.perf_counter() - t)
        shard_rate = rates["small"]

        q = Quantizer.fit(chroma_histogram((photos[i] for i in range(min(50, len(photos)))), 10), 32)
        ds = CropBatches(photos, q, args.batch_size, args.crop, seed=0, num_steps=args.batches + 5)
        loader = torch.utils.data.DataLoader(ds, batch_size=None, sampler=range(args.batches + 5), num_workers=args.workers,
                                             prefetch_factor=4 if args.workers else None)
        it = iter(loader)
        for _ in range(5):  # workers started and their queues filled
            next(it)
        t = time.perf_counter()
        for _ in range(args.batches):
            next(it)
        crops_rate = args.batches * args.batch_size / (time.perf_counter() - t)

    print(f"# {len(paths)} photos from {'synthetic 500x375 JPEGs' if not args.photos else src}; load size {args.load_size}, "
          f"crop {args.crop}")
    print(f"data shard:                        {len(paths) / t_shard:8.0f} photos/s")
    print(f"decode, folder (1 core):           {folder_rate:8.1f} photos/s")
    print(f"decode, shards (1 core):           {rates['shards']:8.1f} photos/s  ({rates['shards'] / folder_rate:.2f}x the "
          "folder)")
    print(f"decode, shards --short-side {args.load_size}:  {rates['small']:8.1f} photos/s  "
          f"({rates['small'] / folder_rate:.2f}x the folder)")
    print(f"training crops from --short-side shards, {args.workers} workers: {crops_rate:8.1f} crops/s  "
          f"({crops_rate / max(args.workers, 1) / shard_rate:.2f}x one core's decode per worker)")


if __name__ == "__main__":
    main()
