import json
import subprocess
import sys

import numpy as np
from PIL import Image

from colorunet.evaluation import evaluate, evaluation_photos

from conftest import learnable_photo


def test_evaluate_cli_writes_a_report(tmp_path, photo_dir, tiny_run):
    report = tmp_path / "report"
    r = subprocess.run([sys.executable, "-m", "colorunet", "evaluate", str(photo_dir), "--model", str(tiny_run), "-t", "0.5",
                        "--report", str(report), "-q"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    printed = json.loads(r.stdout)
    saved = json.loads((report / "metrics.json").read_text())
    assert printed == saved and saved["photos"] == 8 and saved["temperature"] == 0.5
    for key in ("auc", "auc_rebalanced", "psnr", "ssim", "colorfulness", "colorfulness_true", "delta_colorfulness"):
        assert np.isfinite(saved[key]), key
    assert 0 <= saved["auc"] <= 100 and 0 <= saved["auc_rebalanced"] <= 100
    page = (report / "index.html").read_text()
    assert page.count("<img") >= 1 + 8 * 4 and (report / "curves.png").stat().st_size > 1000
    for i in range(8):
        for kind in ("gray", "output", "original", "confidence"):
            assert (report / "images" / f"{i:04d}_{kind}.jpg").exists()
    assert len((report / "per_image.csv").read_text().splitlines()) == 9


def test_gray_baseline_has_zero_colourfulness_and_perfect_grey_photos(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(learnable_photo(rng, 40, 60)).save(tmp_path / f"{i}.png")
    Image.fromarray(np.full((20, 20), 128, np.uint8)).save(tmp_path / "grey.png")  # skipped: nothing to compare
    ev = evaluate(evaluation_photos(tmp_path), "gray", progress=False)
    assert ev.metrics["photos"] == 3 and ev.metrics["skipped"] == 1
    assert ev.metrics["colorfulness"] == 0 and ev.metrics["delta_colorfulness"] == ev.metrics["colorfulness_true"]


def test_validation_subset_is_the_trainers(tmp_path):
    for i in range(30):
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / f"{i:02d}.png")
    from colorunet.data import split_paths

    val = evaluation_photos(tmp_path, "validation", 0.2)
    assert val == split_paths(sorted(tmp_path.glob("*.png")), tmp_path, 0.2)[1] and 0 < len(val) < 30


def test_mean_colour_baseline_is_one_constant_chroma(tmp_path):
    from colorunet.color import rgb_to_yuv

    rng = np.random.default_rng(1)
    for i in range(2):
        Image.fromarray(learnable_photo(rng, 40, 60)).save(tmp_path / f"{i}.png")
    ev = evaluate(evaluation_photos(tmp_path), "mean-colour", progress=False, report=tmp_path / "rep")
    assert ev.metrics["photos"] == 2 and ev.metrics["colorfulness"] > 0
    out = np.asarray(Image.open(tmp_path / "rep" / "images" / "0000_output.jpg"), dtype=float) / 255
    uv = rgb_to_yuv(out)[8:-8, 8:-8, 1:]  # JPEG thumbnail: allow its rounding
    assert uv.std(axis=(0, 1)).max() < 0.02
