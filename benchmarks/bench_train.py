"""Training throughput through the real trainer (data loader included).

    python benchmarks/bench_train.py                       # CPU: 64² and 128² crops, fp32 vs bf16
    python benchmarks/bench_train.py --device cuda --crops 128 256 --presets paper wide

Each configuration trains a fresh run for ``--steps`` steps on synthetic photos
(or ``--photos DIR``) with ``colorunet.training.trainer.Trainer`` and reports the
images/s of the steps after the first ``--warmup`` (so start-up and first-call
costs are not counted). Each runs in a fresh process, one after the other in
this one run on one machine, so their ratios are comparable; absolute numbers
vary between runs and machines.

fp32-naive is what a plain PyTorch loop gets: fp32, NCHW, the C library's
allocator as it comes. Every other row is set up as ``colorunet train`` sets
itself up (freed memory kept for reuse, ``allocator.py``);
fp32-naive+alloc is the naive loop with only that setting, to show what it
alone is worth.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from colorunet.training.trainer import Trainer, resolve_configs  # noqa: E402


def make_photos(folder: Path, n: int = 24, size: tuple[int, int] = (384, 512)) -> Path:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        base = rng.uniform(0, 1, (6, 8, 3))
        img = Image.fromarray((base * 255).astype(np.uint8)).resize(size[::-1], Image.Resampling.BICUBIC)
        noisy = np.clip(np.asarray(img, dtype=np.int16) + rng.integers(-20, 20, (*size, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(folder / f"photo_{i:03d}.jpg", quality=90)
    return folder


def measure(
    photos: Path,
    work: Path,
    preset: str,
    crop: int,
    precision: str,
    device: str,
    steps: int,
    warmup: int,
    batch: int,
    workers: int,
) -> float:
    """One configuration in a fresh process (see ``child``)."""
    spec = dict(
        photos=str(photos),
        work=str(work),
        preset=preset,
        crop=crop,
        precision=precision,
        device=device,
        steps=steps,
        warmup=warmup,
        batch=batch,
        workers=workers,
    )
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{precision} at {crop}² failed:\n{proc.stderr[-3000:]}")
    return float(proc.stdout.strip().splitlines()[-1])


def child(
    photos: str, work: str, preset: str, crop: int, precision: str, device: str, steps: int, warmup: int, batch: int, workers: int
) -> float:
    from colorunet.apps.allocator import reuse_freed_memory

    if precision != "fp32-naive":
        reuse_freed_memory()  # as the colorunet command does first
    out = Path(work) / f"{preset}-{crop}-{precision}-{device}"
    compile_ = precision.endswith("+compile")
    precision = precision.removesuffix("+compile").removesuffix("+alloc")
    mc, cfg = resolve_configs(preset, {}, {
        "compile": compile_,
        "steps": steps, "crop": crop, "load_size": max(2 * crop, 256), "batch_size": batch, "precision": precision,
        "device": device, "checkpoint_every": 10**9, "val_fraction": 0.0, "workers": workers,
        "channels_last": precision != "fp32-naive",
    } | ({"precision": "fp32"} if precision == "fp32-naive" else {}))
    Trainer(Path(photos), out, mc, cfg, progress=False).run()
    rows = list(csv.DictReader(open(out / "log.csv")))
    t0 = float(rows[warmup - 1]["elapsed_s"])
    t1 = float(rows[-1]["elapsed_s"])
    return (steps - warmup) * batch / max(t1 - t0, 1e-9)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--photos", type=Path, help="folder of photos (default: 24 synthetic 512×384 JPEGs)")
    p.add_argument("--presets", nargs="+", default=["paper"])
    p.add_argument("--crops", nargs="+", type=int, default=[64, 128])
    p.add_argument("--precisions", nargs="+", default=["fp32-naive", "fp32-naive+alloc", "fp32", "bf16"],
                   help="fp32-naive: fp32 in NCHW layout with the allocator as it comes (what a plain PyTorch loop does); "
                        "fp32-naive+alloc: the same with colorunet's allocator setting; fp32 and bf16 use channels_last and "
                        "that setting; "
                        "add +compile (bf16+compile) to run the network through torch.compile")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(child(**json.loads(args.child)))
        return
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or platform.machine()
    print(f"# torch {torch.__version__}, device {args.device} ({name}), {torch.get_num_threads()} threads, batch "
          f"{args.batch_size}, {args.steps} steps ({args.warmup} warm-up)")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        photos = args.photos or make_photos(work / "photos")
        print(f"{'preset':<18}{'crop':>6}{'precision':>18}{'images/s':>11}{'steps/s':>9}{'vs fp32-naive':>15}")
        for preset in args.presets:
            for crop in args.crops:
                base = None
                for prec in args.precisions:
                    ips = measure(
                        photos, work, preset, crop, prec, args.device, args.steps, args.warmup, args.batch_size, args.workers
                    )
                    base = base or (ips if prec == "fp32-naive" else None)
                    ratio = f"{ips / base:.2f}x" if base else "-"
                    print(f"{preset:<18}{crop:>6}{prec:>18}{ips:>11.1f}{ips / args.batch_size:>9.2f}{ratio:>15}", flush=True)


if __name__ == "__main__":
    main()
