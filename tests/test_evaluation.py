import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import learnable_photo
from PIL import Image

from colorunet.evaluation.evaluate import evaluate, evaluation_photos


@pytest.mark.slow
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
    import hashlib

    (tmp_path / "sub").mkdir()
    names = [f"{i:02d}.png" for i in range(20)] + [f"sub/{i:02d}.jpg" for i in range(20)]
    for n in names:
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / n)
    val = evaluation_photos(tmp_path, "validation", 0.2)
    # the trainer's documented rule, computed here from scratch: sha256 of the relative path
    # without extension, first 8 bytes as a fraction of 2^64, below --val-fraction
    def held_out(name):
        return int.from_bytes(hashlib.sha256(name.rsplit(".", 1)[0].encode()).digest()[:8], "big") / 2**64 < 0.2

    assert sorted(p.relative_to(tmp_path).as_posix() for p in val) == sorted(n for n in names if held_out(n))
    assert 0 < len(val) < 40


def test_validation_subset_of_the_trainers_own_run(tmp_path, photo_dir, tiny_run):
    # the run recorded how many photos it held out; evaluate --subset validation finds as many
    recorded = json.loads((tiny_run / "config.json").read_text())["data"]
    n_val = len(evaluation_photos(photo_dir, "validation", 0.1)) if recorded["val_photos"] else 0
    assert n_val == recorded["val_photos"] and n_val + recorded["train_photos"] == 8


def test_photos_are_scored_at_the_eval_size(tmp_path):
    rng = np.random.default_rng(3)
    Image.fromarray(learnable_photo(rng, 400, 600)).save(tmp_path / "big.png")
    Image.fromarray(learnable_photo(rng, 100, 150)).save(tmp_path / "small.png")
    photos = evaluation_photos(tmp_path)
    sizes = {r["photo"]: (r["width"], r["height"]) for r in evaluate(photos, "gray", progress=False).per_image}
    assert sizes == {"big.png": (384, 256), "small.png": (150, 100)}  # scaled down to a short side of 256, never up
    sizes = {r["photo"]: (r["width"], r["height"]) for r in evaluate(photos, "gray", progress=False, eval_size=0).per_image}
    assert sizes == {"big.png": (600, 400), "small.png": (150, 100)}


def test_false_color_is_zero_for_gray_and_counts_vivid_paint_on_neutral_pixels(tmp_path):
    from colorunet.evaluation.metrics import false_color, false_colour

    grey_wall = np.full((20, 30, 3), 0.5)
    grey_wall[:, 20:] = [0.8, 0.2, 0.2]  # a third of the photo is red: 2/3 neutral
    Image.fromarray((grey_wall * 255).round().astype(np.uint8)).save(tmp_path / "wall.png")
    ev = evaluate(evaluation_photos(tmp_path), "gray", progress=False)
    assert ev.metrics["false_color"] == 0 and ev.metrics["false_color_photos"] == 1
    # the earlier spelling, kept for reports and code that use it
    assert ev.metrics["false_colour"] == 0 and ev.metrics["false_colour_photos"] == 1 and false_colour is false_color
    # by hand: paint 60 of the 400 neutral pixels blue (|ab| ≈ 40): 15 %
    from colorunet.core.color import rgb_to_lab

    pred = grey_wall.copy()
    pred[:6, :10] = [0.3, 0.4, 0.8]
    lab_p, lab_t = rgb_to_lab(pred), rgb_to_lab(grey_wall)
    assert false_color(lab_p[..., 1:], lab_t[..., 1:]) == pytest.approx(100 * 60 / 400)
    # a photo with (almost) no neutral pixels has no score
    red = np.tile([0.8, 0.2, 0.2], (20, 30, 1))
    assert np.isnan(false_color(rgb_to_lab(red)[..., 1:], rgb_to_lab(red)[..., 1:]))


def test_mean_color_baseline_is_one_constant_chroma(tmp_path):
    from colorunet.core.color import rgb_to_yuv

    rng = np.random.default_rng(1)
    for i in range(2):
        Image.fromarray(learnable_photo(rng, 40, 60)).save(tmp_path / f"{i}.png")
    ev = evaluate(evaluation_photos(tmp_path), "mean-colour", progress=False, report=tmp_path / "rep")  # the earlier name
    assert ev.metrics["model"] == "mean-color" and ev.metrics["photos"] == 2 and ev.metrics["colorfulness"] > 0
    out = np.asarray(Image.open(tmp_path / "rep" / "images" / "0000_output.jpg"), dtype=float) / 255
    uv = rgb_to_yuv(out)[8:-8, 8:-8, 1:]  # JPEG thumbnail: allow its rounding
    assert uv.std(axis=(0, 1)).max() < 0.02


def test_palette_originals_are_scaled_as_rgb_photos(tmp_path):
    rng = np.random.default_rng(4)
    rgb = learnable_photo(rng, 400, 600)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    Image.fromarray(rgb).quantize(256, dither=Image.Dither.NONE).save(tmp_path / "palette.png")
    rows = {r["photo"]: r for r in evaluate(evaluation_photos(tmp_path), "gray", progress=False).per_image}
    # Lanczos on the palette photo's colours, not nearest-neighbour on its palette indices
    assert rows["palette.png"]["width"] == rows["rgb.png"]["width"] == 384
    assert abs(rows["palette.png"]["psnr"] - rows["rgb.png"]["psnr"]) < 0.5


def test_a_class_bias_is_what_the_decode_sees(photo_dir):
    """``bias`` is added to the logits: zero changes nothing; a bias that makes one class
    certain paints every pixel that class's chroma (so the outputs hold one hue)."""
    from colorunet.core.weights import load_model

    photos = evaluation_photos(photo_dir)[:2]
    m = load_model("default")
    plain = evaluate(photos, m, 0.7, progress=False).metrics
    zero = evaluate(photos, m, 0.7, progress=False, bias=np.zeros(m.quantizer.num_classes, np.float32)).metrics
    assert zero["auc_rebalanced"] == plain["auc_rebalanced"] and zero["colorfulness"] == plain["colorfulness"]
    u, v = m.quantizer.centers[:, 0], m.quantizer.centers[:, 1]
    vivid = int(np.argmax(np.hypot(u, v)))
    forced = np.full(m.quantizer.num_classes, -1e4, np.float32)
    forced[vivid] = 0.0
    one = evaluate(photos, m, 0.7, progress=False, bias=forced).metrics
    assert one["colorfulness"] > plain["colorfulness"]
    with pytest.raises(ValueError, match="no colour classes to bias"):
        evaluate(photos, "gray", progress=False, bias=forced)
