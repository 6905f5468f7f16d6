"""Training samples per second against the size of a photo folder, in one process.

    python benchmarks/bench_data.py [--sizes 1000 10000 100000] [--samples 3000]

Builds the training stream (``data.CropBatches``: epoch permutation, crop, flip,
noise, class targets) over folders of N small photos, and times drawing
``--samples`` consecutive samples. To keep memory flat, the N "photos" are
references to 64 distinct 160×160 arrays: what depends on N is only the epoch's
permutation of the photos. "per sample" rebuilds that permutation for every
sample, as colorunet did before it was computed once per epoch ("cached"), so
the two columns show what the cache is worth and that the stream no longer
slows down as folders grow.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from colorunet.training.data import CropBatches
from colorunet.core.quantize import ChromaHistogram, Quantizer


class PerSamplePermutation(CropBatches):
    """The stream as it was: the epoch's permutation rebuilt for every sample (O(N) each)."""

    def _epoch_permutation(self, epoch: int) -> np.ndarray:
        return np.random.default_rng((self.seed, 0xE0C, epoch)).permutation(len(self.photos))


def rate(stream: CropBatches, samples: int) -> float:
    stream.sample(0)  # warm up
    t = time.perf_counter()
    for k in range(samples):
        stream.sample(k)
    return samples / (time.perf_counter() - t)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    p.add_argument("--samples", type=int, default=3000)
    args = p.parse_args()
    rng = np.random.default_rng(0)
    distinct = [rng.integers(0, 256, (160, 160, 3), dtype=np.uint8) for _ in range(64)]
    q = Quantizer.fit(ChromaHistogram.of(rng.normal(0, 0.1, 10_000), rng.normal(0, 0.1, 10_000)), 32)
    print(f"# samples/s of 64² training crops, {args.samples} samples each")
    print(f"{'photos':>8} {'per sample':>12} {'cached':>10} {'ratio':>7}")
    for n in args.sizes:
        photos = [distinct[i % len(distinct)] for i in range(n)]
        old = rate(PerSamplePermutation(photos, q, batch_size=1, crop=64, seed=0), args.samples)
        new = rate(CropBatches(photos, q, batch_size=1, crop=64, seed=0), args.samples)
        print(f"{n:>8} {old:>12.0f} {new:>10.0f} {new / old:>6.1f}x", flush=True)


if __name__ == "__main__":
    main()
