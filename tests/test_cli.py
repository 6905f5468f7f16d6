"""The real ``colorunet`` command, run as a user runs it (a subprocess)."""

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import synthetic_photo
from PIL import Image

from colorunet.core.color import rgb_to_luma
from colorunet.inference.pipeline import default_sample

pytestmark = pytest.mark.slow  # every test here runs the real command in a subprocess


def run(*args, cwd=None):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run(
        [sys.executable, "-m", "colorunet", *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env, timeout=300
    )


def test_version_and_help():
    r = run("--version")
    assert r.returncode == 0 and r.stdout.startswith("colorunet ")
    r = run("colorize", "--help")
    assert r.returncode == 0 and "--temperature" in r.stdout


def test_colorize_sample_with_confidence(tmp_path):
    out = tmp_path / "camera color.png"  # a space in the name
    r = run("colorize", default_sample(), "-o", out, "--confidence", "-t", "0.5")
    assert r.returncode == 0, r.stderr
    img = Image.open(out)
    src = Image.open(default_sample())
    assert img.size == src.size and img.mode == "RGB"
    y = rgb_to_luma(np.asarray(img, dtype=float) / 255)
    assert np.abs(y - np.asarray(src.convert("L"), dtype=float) / 255).max() <= 0.5 / 255 + 1e-9
    for name in ("camera color_confidence.png", "camera color_confidence_ratio.png"):
        conf = Image.open(tmp_path / name)
        assert conf.size == src.size and conf.mode == "L"


def test_folder_batch_with_a_corrupt_file(tmp_path, tiny_run):
    src = tmp_path / "scans"
    (src / "deeper").mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(synthetic_photo(rng, 30, 40)).save(src / "a.jpg")
    Image.fromarray(synthetic_photo(rng, 30, 40)[..., 0]).save(src / "deeper" / "b.png")
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    out = tmp_path / "colored"
    r = run("colorize", src, "-o", out, "--model", tiny_run / "model.safetensors", "--temperature", "0.4", "-q")
    assert r.returncode == 1  # something failed...
    assert (out / "a.jpg").exists() and (out / "deeper" / "b.png").exists()  # ...but the rest was done
    assert not (out / "broken.jpg").exists()
    assert "broken.jpg" in r.stderr and "Traceback" not in r.stderr
    assert not list(out.rglob("*.part"))
    # a second run keeps what exists, unless --overwrite
    before = (out / "a.jpg").stat().st_mtime_ns
    r = run("colorize", src / "a.jpg", "-o", out / "a.jpg", "--model", tiny_run)
    assert r.returncode == 0 and "exists" in r.stderr and (out / "a.jpg").stat().st_mtime_ns == before
    r = run("colorize", src / "a.jpg", "-o", out / "a.jpg", "--model", tiny_run, "--overwrite")
    assert r.returncode == 0 and (out / "a.jpg").stat().st_mtime_ns != before


def test_format_option_and_default_output_name(tmp_path):
    src = tmp_path / "photo.png"
    Image.fromarray(synthetic_photo(np.random.default_rng(1), 20, 20)).save(src)
    r = run("colorize", src)
    assert r.returncode == 0 and (tmp_path / "photo_color.png").exists()
    r = run("colorize", src, "-o", tmp_path / "outdir", "--format", "jpg")
    assert r.returncode == 0 and Image.open(tmp_path / "outdir" / "photo.jpg").format == "JPEG"


def test_never_overwrites_an_input(tmp_path):
    src = tmp_path / "photo.png"
    Image.fromarray(synthetic_photo(np.random.default_rng(2), 20, 20)).save(src)
    data = src.read_bytes()
    r = run("colorize", src, "-o", src, "--overwrite")
    assert r.returncode != 0 and "overwrite an input" in r.stderr
    assert src.read_bytes() == data


def test_clear_errors(tmp_path):
    r = run("colorize", tmp_path / "missing.jpg")
    assert r.returncode == 2 and "missing.jpg" in r.stderr and "Traceback" not in r.stderr
    r = run("colorize", default_sample(), "--model", tmp_path / "nope.safetensors", "-o", tmp_path / "x.png")
    assert r.returncode == 2 and "nope.safetensors" in r.stderr and "Traceback" not in r.stderr
    r = run("colorize", default_sample(), "-t", "0", "-o", tmp_path / "x.png")
    assert r.returncode == 2 and "between 0.01 and 100" in r.stderr
    r = run("train", tmp_path / "empty", "--out", tmp_path / "run")
    assert r.returncode == 2 and "not a folder of photos" in r.stderr and "Traceback" not in r.stderr


def test_train_then_colorize_with_the_run(tmp_path, photo_dir):
    out = tmp_path / "runs" / "mine"
    r = run("train", photo_dir, "--out", out, "--steps", "4", "--batch-size", "4", "--crop", "32", "--load-size", "48", "-q")
    assert r.returncode == 0, r.stderr
    assert (out / "model.safetensors").exists() and (out / "config.json").exists() and (out / "log.csv").exists()
    r = run("colorize", default_sample(), "-o", tmp_path / "c.png", "--model", out, "--mode", "mode")
    assert r.returncode == 0, r.stderr
    r = run("info", "--model", out)
    assert r.returncode == 0 and '"parameters": 130400' in r.stdout
    # resuming a finished run with more steps continues it
    r = run("train", photo_dir, "--out", out, "--resume", "--steps", "6", "-q")
    assert r.returncode == 0, r.stderr
    assert "step_000000006.pt" in os.listdir(out / "checkpoints")
