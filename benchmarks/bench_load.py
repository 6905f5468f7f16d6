"""A bounded load test of `colorunet serve` on loopback.

    python benchmarks/bench_load.py [--clients 8] [--seconds 60] [--overload-seconds 20]

Phase 1: a server with the default limits (2 colorizations at once, 10 s queue);
``--clients`` threads post a 1-megapixel JPEG in a loop for ``--seconds``. Every
200 answer is checked to be a PNG of the photo's size. Reported: requests/s,
p50/p99 latency, errors, and the server's resident memory (sampled each second:
first, last and peak) — flat memory means nothing accumulates per request.
Phase 2 (overload): the same clients against a server with one slot and a
0.05 s queue: the excess must come back at once as 503 with Retry-After, not
pile up. Traffic goes to 127.0.0.1 only, and every loop stops by itself.
"""

import argparse
import io
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_phase(extra: list[str], clients: int, seconds: float, photo: bytes, size: tuple[int, int]) -> dict:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "colorunet", "serve", "--port", str(port), *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if httpx.get(url + "/api/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    latencies, statuses, bad, retry_after = [], [], [], []
    lock = threading.Lock()
    stop = time.time() + seconds

    def client() -> None:
        with httpx.Client(timeout=60) as c:
            while time.time() < stop:
                t = time.perf_counter()
                r = c.post(url + "/api/colorize", files={"image": ("photo.jpg", photo, "image/jpeg")})
                dt = time.perf_counter() - t
                ok = r.status_code != 200 or (
                    r.headers["content-type"] == "image/png" and Image.open(io.BytesIO(r.content)).size == size
                )
                with lock:
                    latencies.append(dt)
                    statuses.append(r.status_code)
                    if not ok:
                        bad.append(r.status_code)
                    if r.status_code == 503:
                        retry_after.append(r.headers.get("retry-after"))

    rss = [rss_mb(proc.pid)]
    threads = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.time()
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        time.sleep(1)
        rss.append(rss_mb(proc.pid))
    elapsed = time.time() - t0
    proc.terminate()
    proc.wait(timeout=10)
    lat = np.array(latencies)
    codes = {c: statuses.count(c) for c in sorted(set(statuses))}
    return {
        "requests": len(statuses),
        "per_s": len(statuses) / elapsed,
        "codes": codes,
        "p50": np.percentile(lat, 50),
        "p99": np.percentile(lat, 99),
        "invalid": len(bad),
        "rss_first": rss[1] if len(rss) > 1 else rss[0],
        "rss_last": rss[-1],
        "rss_peak": max(rss),
        "rss_quarters": [rss[min(len(rss) - 1, round(q * (len(rss) - 1)))] for q in (0.25, 0.5, 0.75, 1.0)],
        "retry_after": sorted(set(retry_after)),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--overload-seconds", type=float, default=20)
    args = p.parse_args()
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).resize((1000, 1000), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    for name, extra, secs in (("normal (2 slots, 10 s queue)", [], args.seconds),
                              ("overload (1 slot, 0.05 s "
                               "queue)", ["--max-concurrent", "1", "--queue-timeout", "0.05"], args.overload_seconds)):
        r = run_phase(extra, args.clients, secs, buf.getvalue(), img.size)
        print(f"{name}: {args.clients} clients, {secs:.0f} s, 1-megapixel JPEG")
        print(f"  {r['requests']} requests ({r['per_s']:.1f}/s), status counts {r['codes']}, invalid images {r['invalid']}")
        print(f"  latency p50 {r['p50']:.2f} s, p99 {r['p99']:.2f} s; Retry-After {r['retry_after'] or '-'}")
        quarters = ", ".join(f"{v:.0f}" for v in r["rss_quarters"])
        print(f"  server RSS: {r['rss_first']:.0f} MB after 1 s; at 25/50/75/100% of the run: {quarters} MB; peak "
              f"{r['rss_peak']:.0f} MB", flush=True)


if __name__ == "__main__":
    main()
