"""``--reference``: re-weighting the class distribution toward a reference photo's palette."""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata
from skimage.color import rgb2lab

from colorunet.core.images import ImageError
from colorunet.inference.pipeline import colorize_full, get_model, reference_bias_for
from colorunet.inference.reference import (
    MAX_STRENGTH,
    PRIOR_MIX,
    REFERENCE_SIZE,
    class_bias,
    reference_histogram,
    reference_pixels,
)
from colorunet.core.values import ValueRangeError

RED = (200, 30, 30)


def flat(colour, size=(40, 30)) -> Image.Image:
    return Image.new("RGB", size, colour)


def mean_a_star(img: Image.Image) -> float:
    return float(rgb2lab(np.asarray(img.convert("RGB")) / 255.0)[..., 1].mean())


def test_class_bias_by_hand():
    # two classes, the reference all in the first: h' = 0.99·(1, 0) + 0.01·(0.5, 0.5) = (0.995, 0.005)
    bias = class_bias(np.array([1.0, 0.0]), np.array([0.5, 0.5]), strength=1.0)
    assert bias == pytest.approx([np.log(0.995 / 0.5), np.log(0.005 / 0.5)], rel=1e-6)
    # γ scales it; γ = 0 is no change
    assert class_bias(np.array([1.0, 0.0]), np.array([0.5, 0.5]), strength=2.0) == pytest.approx(2 * bias, rel=1e-6)
    assert not class_bias(np.array([1.0, 0.0]), np.array([0.5, 0.5]), strength=0.0).any()
    # a reference whose palette is the training prior changes nothing
    prior = np.array([0.6, 0.3, 0.1])
    assert class_bias(prior, prior, 3.0) == pytest.approx(np.zeros(3), abs=1e-6)
    # a class absent from the reference is damped by PRIOR_MIX^γ relative to the prior, whatever its prior
    b = class_bias(np.array([1.0, 0.0, 0.0]), prior, 1.0)
    assert np.exp(b[1]) == pytest.approx(PRIOR_MIX) and np.exp(b[2]) == pytest.approx(PRIOR_MIX)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -0.5, MAX_STRENGTH + 1, "1"])
def test_strength_is_checked(bad):
    with pytest.raises(ValueRangeError):
        class_bias(np.array([1.0, 0.0]), np.array([0.5, 0.5]), bad)


def test_histogram_of_one_colour_peaks_at_its_class():
    from colorunet.core.color import luma_chroma_to_rgb, to_lightness_chroma

    q = get_model("default").quantizer
    checked = 0
    for k, (u, v) in enumerate(q.centers):
        rgb = luma_chroma_to_rgb(np.full((4, 4), 0.5, np.float32), np.full((4, 4), u, np.float32), np.full((4, 4), v, np.float32))
        if np.abs(to_lightness_chroma(rgb, "yuv")[1] - (u, v)).max() > 0.005:
            continue  # out of gamut at this luma (clipped): its pixels would not hold the class's chroma
        if np.hypot(u, v) < 0.03:
            continue  # a near-grey class: a reference of it alone is refused as greyscale (tested below)
        h = reference_histogram(rgb.reshape(-1, 3), q.centers, "yuv")
        assert h.sum() == pytest.approx(1.0) and (h >= 0).all()
        assert int(np.argmax(h)) == k
        checked += 1
    assert checked >= q.num_classes // 2


def test_reference_is_read_at_a_bounded_size_and_transparency_is_left_out():
    big = Image.new("RGB", (3000, 2000), RED)
    assert len(reference_pixels(big)) <= REFERENCE_SIZE * REFERENCE_SIZE * 1.5 + 1
    rgba = Image.new("RGBA", (20, 20), (0, 0, 255, 0))
    rgba.paste((200, 30, 30, 255), (0, 0, 10, 20))
    px = reference_pixels(rgba)
    assert len(px) == 200 and np.allclose(px, np.array(RED) / 255, atol=1e-6)


def test_a_red_reference_makes_a_photo_redder_and_strength_zero_changes_nothing():
    photo = Image.fromarray(skdata.coffee()).resize((200, 150))
    plain = colorize_full(photo).image
    red = colorize_full(photo, reference=flat(RED)).image
    assert mean_a_star(red) > mean_a_star(plain) + 10
    # luma is the photo's own, whatever the palette
    y = lambda im: np.asarray(im.convert("L"), float)  # noqa: E731
    assert np.abs(y(red) - y(photo)).mean() < 2.0
    same = colorize_full(photo, reference=flat(RED), reference_strength=0.0).image
    assert np.array_equal(np.asarray(same), np.asarray(plain))


def test_grey_or_transparent_reference_is_a_clear_error():
    with pytest.raises(ImageError, match="grayscale"):
        colorize_full(flat((90, 90, 90)), reference=flat((120, 120, 120)))
    with pytest.raises(ImageError, match="transparent"):
        colorize_full(flat((90, 90, 90)), reference=Image.new("RGBA", (10, 10), (255, 0, 0, 0)))


def test_regression_model_has_no_classes_to_reweight():
    from colorunet.core.model import ColorUNet, ColorUNetConfig
    from colorunet.core.weights import ColorModel

    regression = ColorModel(ColorUNet(ColorUNetConfig(widths=(8, 16, 32), head="regression")).eval(), None)
    with pytest.raises(ValueError, match="needs a classification model"):
        colorize_full(flat((90, 90, 90)), regression, reference=flat(RED))


def test_a_strength_without_a_reference_is_refused_not_ignored(tmp_path):
    from colorunet import colorize
    from colorunet.evaluation.evaluate import evaluate

    with pytest.raises(ValueError, match="reference strength: needs a reference photo"):
        colorize(flat((90, 90, 90)), reference_strength=2)
    flat(RED).save(tmp_path / "red.png")
    with pytest.raises(ValueError, match="reference strength: needs a reference photo"):
        evaluate([tmp_path / "red.png"], "default", progress=False, reference_strength=0.5)


def test_bias_of_the_wrong_length_is_refused():
    with pytest.raises(ValueError, match="one value per colour class"):
        colorize_full(flat((90, 90, 90)), bias=np.zeros(3, np.float32))


def test_onnx_backend_follows_the_same_reference():
    pytest.importorskip("onnxruntime")
    from colorunet.inference.onnx_backend import colorize_full as onnx_colorize

    photo = Image.fromarray(skdata.astronaut()).resize((160, 160))
    a = np.asarray(onnx_colorize(photo, "default", reference=flat(RED)).image, float)
    b = np.asarray(colorize_full(photo, reference=flat(RED)).image, float)
    assert np.abs(a - b).mean() < 1.0


def test_oracle_reference_raises_rebalanced_auc(tmp_path):
    """Each photo's own original as its reference (the oracle) scores better than no reference."""
    from colorunet.evaluation.evaluate import evaluate

    for name in ("astronaut", "coffee", "chelsea"):
        Image.fromarray(getattr(skdata, name)()).resize((192, 160)).save(tmp_path / f"{name}.png")
    photos = sorted(tmp_path.glob("*.png"))
    plain = evaluate(photos, "default", progress=False).metrics
    oracle = evaluate(photos, "default", progress=False, reference="self").metrics
    assert oracle["reference"] == "self"
    assert oracle["auc_rebalanced"] > plain["auc_rebalanced"] + 2
    with pytest.raises(ValueError, match="baseline"):
        evaluate(photos, "gray", progress=False, reference="self")


@pytest.mark.slow
def test_cli_reference(tmp_path):
    photo = tmp_path / "photo.png"
    Image.fromarray(skdata.coffee()).resize((160, 120)).convert("L").save(photo)
    flat(RED).save(tmp_path / "red.png")
    flat((120, 120, 120)).save(tmp_path / "grey.png")

    def run(*args):
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        return subprocess.run(
            [sys.executable, "-m", "colorunet", *map(str, args)], capture_output=True, text=True, env=env, timeout=300
        )

    r = run("colorize", photo, "-o", tmp_path / "plain.png")
    assert r.returncode == 0, r.stderr
    r = run("colorize", photo, "-o", tmp_path / "red_out.png", "--reference", tmp_path / "red.png")
    assert r.returncode == 0, r.stderr
    assert mean_a_star(Image.open(tmp_path / "red_out.png")) > mean_a_star(Image.open(tmp_path / "plain.png")) + 10
    r = run("colorize", photo, "-o", tmp_path / "x.png", "--reference", tmp_path / "grey.png")
    assert r.returncode == 2 and "grey.png" in r.stderr and "grayscale" in r.stderr and "Traceback" not in r.stderr
    r = run("colorize", photo, "-o", tmp_path / "x.png", "--reference", tmp_path / "missing.png")
    assert r.returncode == 2 and "missing.png: no such file" in r.stderr
    r = run("colorize", photo, "-o", tmp_path / "x.png", "--reference-strength", "2")
    assert r.returncode == 2 and "needs --reference" in r.stderr
    r = run("evaluate", tmp_path, "--reference-strength", "2")  # as colorize and video: refused, not ignored
    assert r.returncode == 2 and "needs --reference" in r.stderr
    r = run("colorize", photo, "-o", tmp_path / "x.png", "--reference", tmp_path / "red.png", "--reference-strength", "nan")
    assert r.returncode == 2 and "NaN" in r.stderr
    assert not (tmp_path / "x.png").exists()


def test_video_frames_follow_the_reference():
    from colorunet.apps.video import FrameColorizer

    m = get_model("default")
    frame = Image.fromarray(skdata.coffee()).resize((160, 120)).convert("L")
    plain = FrameColorizer(m)
    red = FrameColorizer(m, bias=reference_bias_for(m, flat(RED)))
    for _ in range(3):  # through the temporal smoothing
        a, b = plain(frame), red(frame)
    assert mean_a_star(b) > mean_a_star(a) + 10


def test_a_lab_model_follows_the_reference_too():
    from colorunet.core.model import ColorUNetConfig, build_network
    from colorunet.core.quantize import LAB_GRID_SIZE, ChromaHistogram, Quantizer
    from colorunet.core.weights import ColorModel

    rng = np.random.default_rng(0)
    ab = rng.normal(0, 30, (5000, 2))
    q = Quantizer.fit_in_gamut(ChromaHistogram.of(ab[:, 0], ab[:, 1], LAB_GRID_SIZE, "lab"))
    cfg = ColorUNetConfig(widths=(8, 16, 32), color_space="lab", num_classes=q.num_classes, head="classification")
    m = ColorModel(build_network(cfg).eval(), q)
    img = Image.fromarray((rng.uniform(0, 1, (64, 64)) * 255).astype(np.uint8))
    assert mean_a_star(colorize_full(img, m, reference=flat(RED)).image) > mean_a_star(colorize_full(img, m).image) + 10


@pytest.mark.slow
def test_cli_video_frames_follow_the_reference(tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    grey = Image.fromarray(skdata.coffee()).resize((128, 96)).convert("L")
    for i in range(3):
        grey.save(frames / f"f{i:03d}.png")
    flat(RED).save(tmp_path / "red.png")

    def video(out, *extra):
        r = subprocess.run([sys.executable, "-m", "colorunet", "video", frames, "-o", out, "-q", *extra], capture_output=True,
                           text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        return [Image.open(p) for p in sorted(out.glob("*.png"))]

    plain, red = video(tmp_path / "plain"), video(tmp_path / "red", "--reference", tmp_path / "red.png")
    assert len(plain) == len(red) == 3
    assert all(mean_a_star(b) > mean_a_star(a) + 10 for a, b in zip(plain, red))
    r = subprocess.run([sys.executable, "-m", "colorunet", "video", frames, "-o", tmp_path / "x", "--reference-strength", "2"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "needs --reference" in r.stderr
