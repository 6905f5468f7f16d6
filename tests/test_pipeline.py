import numpy as np
import pytest
from PIL import Image

import colorunet
from colorunet.core.color import rgb_to_luma
from colorunet.inference.pipeline import colorize_full, default_sample, working_shape

from conftest import synthetic_photo


def _luma(img: Image.Image) -> np.ndarray:
    return rgb_to_luma(np.asarray(img.convert("RGB"), dtype=np.float64) / 255)


@pytest.mark.parametrize("size", [(1, 1), (1, 9), (3, 3), (37, 53), (300, 517)])
def test_keeps_size_and_luma(size, tiny_run):
    rng = np.random.default_rng(0)
    h, w = size
    rgb = synthetic_photo(rng, max(h, 2), max(w, 2))[:h, :w]
    img = Image.fromarray(rgb)
    for model in (None, tiny_run):
        out = colorunet.colorize(img, model=model, temperature=0.5)
        assert out.size == img.size and out.mode == "RGB"
        # each channel is rounded by at most half a level, so Y moves by at most 0.5/255
        assert np.abs(_luma(out) - _luma(img)).max() <= 0.5 / 255 + 1e-9


def test_greyscale_input_gets_colour():
    grey = Image.open(default_sample()).convert("L")
    out = colorunet.colorize(grey)
    a = np.asarray(out, dtype=float)
    assert out.size == grey.size
    assert np.abs(a[..., 0] - a[..., 1]).mean() > 1.0  # not grey any more
    assert np.abs(_luma(out) - np.asarray(grey) / 255).max() <= 0.5 / 255 + 1e-9


def test_alpha_is_kept():
    rgba = np.dstack([synthetic_photo(np.random.default_rng(1), 20, 30), np.arange(600).reshape(20, 30) % 256]).astype(np.uint8)
    out = colorunet.colorize(Image.fromarray(rgba))
    assert out.mode == "RGBA"
    np.testing.assert_array_equal(np.asarray(out)[..., 3], rgba[..., 3])


def test_exif_orientation_is_applied(tmp_path):
    img = Image.fromarray(synthetic_photo(np.random.default_rng(2), 40, 60))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    path = tmp_path / "rotated.jpg"
    img.save(path, exif=exif)
    out = colorunet.colorize(path)
    assert out.size == (40, 60)  # shown upright: width and height swapped


def test_confidence_maps(tiny_run):
    img = Image.fromarray(synthetic_photo(np.random.default_rng(3), 50, 70))
    r = colorize_full(img, tiny_run, confidence=True)
    assert r.confidence_top.shape == (50, 70) and r.confidence_margin.shape == (50, 70)
    n = 32
    assert r.confidence_top.min() >= 1 / n - 1e-4 and r.confidence_top.max() <= 1 + 1e-6
    assert r.confidence_margin.min() >= -1e-6 and r.confidence_margin.max() < 1


def test_modes_and_temperature_change_the_result():
    img = Image.open(default_sample())
    outs = {k: np.asarray(colorunet.colorize(img, **kw), dtype=float) for k, kw in {
        "t02": {"temperature": 0.2}, "t1": {"temperature": 1.0}, "mode": {"mode": "mode"}, "mean": {"mode": "mean"}}.items()}
    sat = {k: np.std(v - v.mean(-1, keepdims=True)) for k, v in outs.items()}
    assert sat["t02"] > sat["t1"]
    np.testing.assert_allclose(outs["t1"], outs["mean"], atol=1)


def test_working_size_only_scales_down():
    assert working_shape(1000, 2000, 256) == (256, 512)
    assert working_shape(100, 50, 256) == (100, 50)
    with pytest.raises(ValueError):
        working_shape(10, 10, 0)


def test_array_and_path_inputs(tmp_path):
    rgb = synthetic_photo(np.random.default_rng(4), 24, 32)
    path = tmp_path / "a.png"
    Image.fromarray(rgb).save(path)
    a = np.asarray(colorunet.colorize(rgb))
    b = np.asarray(colorunet.colorize(str(path)))
    c = np.asarray(colorunet.colorize(rgb.astype(np.float32) / 255))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)


def test_a_model_carries_its_measured_temperature(tmp_path, tiny_run):
    from colorunet.core.weights import copy_with_metadata, load_model

    plain = load_model(tiny_run)
    assert plain.temperature == 0.38  # none measured: Zhang et al.'s value
    tuned = load_model(copy_with_metadata(tiny_run, tmp_path / "tuned.safetensors", temperature=1.0))
    assert tuned.temperature == 1.0
    img = Image.fromarray(synthetic_photo(np.random.default_rng(5), 40, 40))
    np.testing.assert_array_equal(
        np.asarray(colorunet.colorize(img, tuned)), np.asarray(colorunet.colorize(img, tuned, temperature=1.0))
    )
    assert not np.array_equal(
        np.asarray(colorunet.colorize(img, tuned)), np.asarray(colorunet.colorize(img, tuned, temperature=0.2))
    )


def _photo(h: int, w: int, mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(7)
    return Image.fromarray(rng.integers(0, 256, (h, w, len(mode)), dtype=np.uint8), mode)


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_block_by_block_conversion_equals_the_whole_photo_at_once(monkeypatch, mode):
    from colorunet.inference import working
    from colorunet.core.images import to_float_rgb, to_uint8
    from colorunet.core.color import luma_chroma_to_rgb

    img = _photo(97, 31, mode)
    rng = np.random.default_rng(8)
    u, v = (rng.uniform(-0.5, 0.5, (97, 31)).astype(np.float32) for _ in range(2))
    monkeypatch.setattr(working, "BLOCK_PIXELS", 31 * 10)  # ten rows per block, the last block 7 rows
    assert [b.stop - b.start for b in working.row_blocks(97, 31)] == [10] * 9 + [7]
    luma, alpha, _ = working.read_luma(img)
    rgb, alpha_whole = to_float_rgb(img)
    np.testing.assert_array_equal(luma, rgb_to_luma(rgb))
    np.testing.assert_array_equal(alpha, alpha_whole)
    out = np.asarray(working.recombine(luma, u, v, alpha))
    np.testing.assert_array_equal(out[..., :3], to_uint8(luma_chroma_to_rgb(luma, u, v)))
    if mode == "RGBA":
        np.testing.assert_array_equal(out[..., 3], np.asarray(img)[..., 3])


def test_full_resolution_steps_hold_no_whole_photo_float_temporaries(monkeypatch):
    """Reading the luma and recombining a 6-megapixel photo: bytes per pixel at the peak
    (NumPy reports its allocations to tracemalloc). The arrays that must exist are the
    stored pixels (3 B/px), the luma (4) and the output (3); float32 RGB of the whole
    photo alone would be 12 B/px, and the recombination's whole-photo temporaries ~50.
    Blocks of 64k pixels keep the blocks' own temporaries below 0.5 B/px here."""
    import tracemalloc

    from colorunet.inference import working
    from colorunet.inference.working import read_luma, recombine

    monkeypatch.setattr(working, "BLOCK_PIXELS", 1 << 16)

    h, w = 2000, 3000
    img = _photo(h, w)
    u = np.full((h, w), 0.1, np.float32)
    v = np.full((h, w), -0.1, np.float32)
    tracemalloc.start()
    try:
        luma, alpha, _ = read_luma(img)
        read_peak = tracemalloc.get_traced_memory()[1] / (h * w)
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        out = recombine(luma, u, v, alpha)
        recombine_peak = (tracemalloc.get_traced_memory()[1] - base) / (h * w)
    finally:
        tracemalloc.stop()
    assert out.size == (w, h)
    assert read_peak < 3 + 4 + 1, read_peak
    assert recombine_peak < 3 + 1, recombine_peak
