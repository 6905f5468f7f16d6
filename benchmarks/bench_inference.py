"""Network forward speed, and end-to-end colorize time and peak memory per photo size.

    python benchmarks/bench_inference.py                      # both parts
    python benchmarks/bench_inference.py --part network
    python benchmarks/bench_inference.py --part end-to-end --sizes 256x256 4000x3000 --model runs/mine --backends torch

Network part: ColorUNet's paper preset, the shipped model's preset and Zhang
et al.'s eccv16 architecture, at 256² and 512², batch 1 and 16, each run as a
user would naively run it (fp32, eager, NCHW, in a fresh process with the C
library's allocator as it comes), then in a second process set up as the
colorunet command sets itself up (freed memory kept for reuse,
``allocator.py``): the same naive run again (what the allocator alone is
worth), colorunet's way (batch norm folded into the convs for ColorUNet, each
conv + ReLU one oneDNN primitive for both networks (``cpu_inference.py``),
bf16 + channels_last where the CPU has bf16 units, as in
``pipeline.predict_scores``), and through
ONNX Runtime (fp32, as ``colorize --backend onnx`` runs it): ms per batch, images/s, FLOPs per image (torch's
FlopCounterMode) and achieved GFLOP/s, next to this machine's matmul peak
(fp32 and bf16, measured in the same run).

Each size runs in a fresh Python process (so the peak resident memory is that
photo's alone): one JPEG of that size is written, colorized once to warm up,
then ``--repeats`` times with ``colorize_full`` of each backend (decode, network
at the working size, chroma upsampling, recombination; the PNG encode is timed
apart). Then the cold CLI on one photo and a folder of one-megapixel JPEGs,
per backend.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def child(size: str, model: str, repeats: int, working_size: int, backend: str = "torch") -> dict:
    sys.path.insert(0, str(SRC))
    import numpy as np
    from PIL import Image

    from colorunet.apps.allocator import reuse_freed_memory
    from colorunet.core.images import save_image

    reuse_freed_memory()  # as the colorunet command does first
    if backend == "onnx":
        from colorunet.inference.onnx_backend import colorize_full, load_onnx_model as get_model
    else:
        from colorunet.inference.pipeline import colorize_full, get_model

    w, h = (int(x) for x in size.split("x"))
    rng = np.random.default_rng(0)
    small = rng.uniform(0, 255, (max(2, h // 64), max(2, w // 64), 3)).astype(np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "photo.jpg"
        Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC).save(path, quality=90)
        m = get_model(model)
        colorize_full(path, m, working_size=working_size)  # warm-up
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            result = colorize_full(path, m, working_size=working_size)
            times.append(time.perf_counter() - t)
        t = time.perf_counter()
        save_image(result.image, Path(tmp) / "out.png")
        encode = time.perf_counter() - t
    peak_mb = vm_hwm_mb("self")
    return {
        "backend": backend,
        "torch_imported": "torch" in sys.modules,
        "size": size,
        "megapixels": w * h / 1e6,
        "colorize_s": min(times),
        "png_encode_s": encode,
        "peak_rss_mb": peak_mb,
    }


def vm_hwm_mb(pid) -> float:
    """Peak resident memory of a process (Linux VmHWM; unlike ru_maxrss it is not inherited over fork)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def matmul_peak(dtype, n: int = 2048, repeats: int = 5) -> float:
    import torch

    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    t = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - t) / 1e9


NETWORK_CASES = [(size, batch) for size in (256, 512) for batch in (1, 16)]


def make_nets(model_spec: str) -> dict:
    import torch

    from colorunet.core.model import ColorUNet, ColorUNetConfig
    from colorunet.core.model_eccv16 import ECCV16Net
    from colorunet.inference.pipeline import get_model

    shipped = get_model(model_spec).config
    torch.manual_seed(0)  # the same weights in both child processes
    return {
        "paper": ColorUNet(ColorUNetConfig()),
        f"shipped {shipped.widths}": ColorUNet(ColorUNetConfig(**shipped.to_dict())),
        "eccv16": ECCV16Net(),
    }


def timed(fn, budget_s: float) -> float:
    """Median seconds per call over about ``budget_s`` of calls (1 to 100 of them) after one
    warm-up call; the median, not the mean, so that one call slowed by the machine's other work
    does not move a row."""
    import torch

    with torch.inference_mode():
        t = time.perf_counter()
        fn()
        first = time.perf_counter() - t
        times = []
        for _ in range(max(1, min(100, int(budget_s / max(first, 1e-4))))):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return statistics.median(times)


def network_child(role: str, model_spec: str, budget_s: float) -> dict:
    """One process's half of the network table.

    "naive": a fresh process as a user would write it: fp32, eager, NCHW, the C
    library's allocator as it comes. "colorunet": the process as ``colorunet``
    sets it up (``allocator.reuse_freed_memory``), then the same naive fp32 run
    (to show what the allocator alone is worth), colorunet's way, and ONNX Runtime.
    """
    sys.path.insert(0, str(SRC))
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from colorunet.apps.allocator import reuse_freed_memory
    from colorunet.core.hardware import inference_dtype
    from colorunet.core.cpu_inference import cpu_inference_net

    out: dict = {"rows": {}}
    if role == "colorunet":
        out["allocator"] = reuse_freed_memory()
        out["peak_fp32"], out["peak_bf16"] = matmul_peak(torch.float32), matmul_peak(torch.bfloat16)
    nets = make_nets(model_spec)
    ours = inference_dtype(torch.device("cpu"))
    out["ours"] = str(ours).replace("torch.", "")
    onnx_sessions = {name: onnx_session(net) for name, net in nets.items()} if role == "colorunet" else {}
    for name, net in nets.items():
        net.eval()
        for size, batch in NETWORK_CASES:
            x = torch.rand(batch, 1, size, size)
            row = {"naive": timed(lambda: net(x), budget_s)}
            if role == "colorunet":
                with FlopCounterMode(display=False) as fc, torch.inference_mode():
                    net(x[:1])
                row["gflop"] = fc.get_total_flops() / 1e9
                # as ColorModel.inference_net and pipeline.predict_scores: BN folded (ColorUNet), each
                # conv (+ ReLU) one oneDNN primitive (both networks), channels_last, autocast
                net_cl = cpu_inference_net(net, ours)
                x_cl = x.contiguous(memory_format=torch.channels_last)

                def fast():
                    with torch.autocast("cpu", dtype=ours, enabled=ours != torch.float32):
                        return net_cl(x_cl)

                row["ours"] = timed(fast, budget_s)
                session, xn = onnx_sessions[name], x.numpy()
                row["ort"] = timed(lambda: session.run(None, {"luma": xn}), budget_s) if session else float("nan")
            out["rows"][f"{name}|{size}|{batch}"] = row
    return out


def network_part(model_spec: str, budget_s: float) -> None:
    """Both halves in fresh processes, one after the other, in this one run."""
    import torch

    halves = {}
    for role in ("naive", "colorunet"):
        proc = subprocess.run(
            [sys.executable, __file__, "--network-child", role, "--model", model_spec, "--budget", str(budget_s)],
            capture_output=True,
            text=True,
            check=True,
        )
        halves[role] = json.loads(proc.stdout.strip().splitlines()[-1])
    c = halves["colorunet"]
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads; colorunet runs {c['ours']} + channels_last, "
          f"allocator keeps freed memory: {c['allocator']}")
    print(f"# matmul peak (2048², this run): fp32 {c['peak_fp32']:.0f} GFLOP/s, bf16 {c['peak_bf16']:.0f} GFLOP/s")
    print("# naive: fp32 eager NCHW in a fresh process, allocator as it comes; naive+alloc: the same with colorunet's "
          "allocator setting")
    print(
        f"{'network':<22}{'input':>7}{'batch':>6}{'GFLOP/img':>10}{'naive ms':>10}{'+alloc ms':>10}"
        f"{'ours ms':>9}{'speed-up':>9}{'vs +alloc':>10}"
        f"{'ours img/s':>11}{'ours GFLOP/s':>13}{'ORT ms':>9}{'ORT speed-up':>13}"
    )
    results = {}
    for key, r in c["rows"].items():
        name, size, batch = key.split("|")
        naive, alloc, mine, ort = halves["naive"]["rows"][key]["naive"], r["naive"], r["ours"], r["ort"]
        results[(name, int(size), int(batch))] = (naive, mine, ort)
        print(
            f"{name:<22}{f'{size}²':>7}{batch:>6}{r['gflop']:>10.2f}{naive * 1e3:>10.1f}{alloc * 1e3:>10.1f}"
            f"{mine * 1e3:>9.1f}{naive / mine:>8.2f}x"
            f"{alloc / mine:>9.2f}x{int(batch) / mine:>11.1f}{r['gflop'] * int(batch) / mine:>13.0f}"
            f"{ort * 1e3:>9.1f}{naive / ort:>12.2f}x",
            flush=True,
        )
    names = list(dict.fromkeys(k[0] for k in results))
    paper = results[("paper", 256, 1)][1]
    print("# at 256², batch 1: eccv16 as colorunet runs it / paper ColorUNet as colorunet runs it = "
          f"{results[('eccv16', 256, 1)][1] / paper:.1f}x")
    flops = {n: c["rows"][f"{n}|256|1"]["gflop"] for n in ("paper", "eccv16")}
    rate = {n: flops[n] / results[(n, 256, 1)][1] for n in flops}
    print(f"#   = FLOP ratio {flops['eccv16'] / flops['paper']:.1f}x × (paper's {rate['paper']:.0f} / eccv16's "
          f"{rate['eccv16']:.0f} GFLOP/s achieved): "
          "the small net's 16–64-channel convolutions use the bf16 units less fully than eccv16's 256–512-channel ones")
    best = {k: min(v[1:]) for k, v in results.items()}
    print("# at 256², batch 1, each at its faster of PyTorch-ours and ONNX Runtime: eccv16 / paper = "
          f"{best[('eccv16', 256, 1)] / best[('paper', 256, 1)]:.1f}x; "
          + ", ".join(f"{n}: {results[(n, 256, 1)][0] / best[(n, 256, 1)]:.2f}x naive" for n in names))


def onnx_session(net):
    """The network exported to ONNX (fp32) in an ONNX Runtime session, as ``colorunet export`` writes it;
    None without onnxruntime."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    import io
    import warnings

    import torch

    buf = io.BytesIO()
    axes = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net.eval(), (torch.rand(1, 1, 64, 64),), buf, input_names=["luma"], output_names=["out"],
                          dynamic_axes={"luma": axes, "out": axes}, opset_version=17, dynamo=False)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(buf.getvalue(), opts, providers=["CPUExecutionProvider"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=("all", "network", "end-to-end"), default="all")
    p.add_argument("--budget", type=float, default=2.0, help="seconds of timing per network configuration (at most 20 repeats)")
    p.add_argument("--sizes", nargs="+", default=["256x256", "1024x1024", "4000x3000"])
    p.add_argument("--model", default="default")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--working-size", type=int, default=256)
    p.add_argument("--folder", type=int, default=200, help="photos in the folder test (1 megapixel JPEGs; 0 to skip)")
    p.add_argument("--backends", nargs="+", default=["torch", "onnx"], help="colorize backends for the end-to-end and folder "
                                                                            "parts")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--network-child", choices=("naive", "colorunet"), help=argparse.SUPPRESS)
    p.add_argument("--child-backend", default="torch", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.network_child:
        print(json.dumps(network_child(args.network_child, args.model, args.budget)))
        return
    if args.child:
        print(json.dumps(child(args.child, args.model, args.repeats, args.working_size, args.child_backend)))
        return
    if args.part in ("all", "network"):
        network_part(args.model, args.budget)
    if args.part == "network":
        return
    print(f"# end to end: model {args.model}, working size {args.working_size}, best of {args.repeats} (after one warm-up)")
    print(f"{'backend':>8}{'size':>11}{'MP':>7}{'colorize s':>12}{'PNG encode s':>14}{'peak RSS MB':>13}{'torch imported':>16}")
    for size in args.sizes:
        for backend in args.backends:
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    size,
                    "--model",
                    model_for(args.model, backend),
                    "--repeats",
                    str(args.repeats),
                    "--working-size",
                    str(args.working_size),
                    "--child-backend",
                    backend,
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{backend:>8}{r['size']:>11}{r['megapixels']:>7.1f}{r['colorize_s']:>12.3f}{r['png_encode_s']:>14.2f}{r['peak_rss_mb']:>13.0f}"
                  f"{str(r['torch_imported']):>16}", flush=True)
    for backend in args.backends:
        cold_cli(model_for(args.model, backend), backend)
    cold_help()
    if args.folder:
        for backend in args.backends:
            folder_part(args.folder, model_for(args.model, backend), backend)


def model_for(model: str, backend: str) -> str:
    """The ONNX backend needs an .onnx file; 'default' names the shipped one for both."""
    if backend == "onnx" and model != "default" and not model.endswith(".onnx"):
        raise SystemExit(f"--backends onnx: export {model} with 'colorunet export --model {model} --onnx FILE' and pass FILE")
    return model


def best_wall_time(command, repeats: int = 3) -> float:
    """Shortest wall time of ``repeats`` cold runs of ``command(i)``, the i-th run's argv (each
    run writes its own output: colorize keeps an existing output and would skip the work)."""
    times = []
    for i in range(repeats):
        t = time.perf_counter()
        subprocess.run(command(i), check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return min(times)


def cold_cli(model: str, backend: str, repeats: int = 3) -> None:
    """`colorunet colorize camera.png -o out.png` from the shell: process start, imports, model load, one 512² photo."""
    sample = SRC / "colorunet" / "assets" / "samples" / "camera.png"
    with tempfile.TemporaryDirectory() as tmp:
        best = best_wall_time(
            lambda i: [
                sys.executable,
                "-m",
                "colorunet",
                "colorize",
                str(sample),
                "-o",
                str(Path(tmp) / f"{i}.png"),
                "--model",
                model,
                "--backend",
                backend,
                "-q",
            ],
            repeats,
        )
    print(f"# cold CLI, backend {backend}: colorunet colorize camera.png (512²) -o out.png: best of {repeats} {best:.2f} s")


def cold_help(repeats: int = 3) -> None:
    """`colorunet --help` from the shell: how long the command takes to answer at all."""
    best = best_wall_time(lambda i: [sys.executable, "-m", "colorunet", "--help"], repeats)
    print(f"# cold CLI: colorunet --help: best of {repeats} {best:.2f} s")


def folder_part(n: int, model: str, backend: str = "torch") -> None:
    """`colorunet colorize DIR -o OUT` on n one-megapixel JPEGs, as a user runs it (cold process);
    also on n/4 of them, so that the two peaks show whether memory stays flat as the folder grows."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    quarter = max(1, n // 4)
    runs = {}  # photos -> (seconds, peak RSS MB)
    with tempfile.TemporaryDirectory() as tmp:
        for count in (quarter, n):
            src = Path(tmp) / f"photos{count}"
            src.mkdir()
            for i in range(count):
                small = rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)
                Image.fromarray(small).resize((1155, 866), Image.Resampling.BICUBIC).save(src / f"photo_{i:04d}.jpg", quality=90)
            t = time.perf_counter()
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "colorunet",
                    "colorize",
                    str(src),
                    "-o",
                    str(Path(tmp) / f"out{count}"),
                    "--model",
                    model,
                    "--backend",
                    backend,
                    "-q",
                ]
            )
            peak = 0.0
            while proc.poll() is None:
                try:
                    peak = max(peak, vm_hwm_mb(proc.pid))
                except (FileNotFoundError, ProcessLookupError, ValueError):
                    pass
                time.sleep(0.05)
            assert proc.returncode == 0
            runs[count] = (time.perf_counter() - t, peak)
    dt, peak = runs[n]
    print(f"# folder, backend {backend}: {n} JPEGs of 1155x866 (1.0 MP) -> JPEG, cold CLI: {dt:.1f} s, {n / dt:.1f} photos/s, "
          f"peak RSS {peak:.0f} MB "
          f"({runs[quarter][1]:.0f} MB for {quarter} of them)")


if __name__ == "__main__":
    main()
