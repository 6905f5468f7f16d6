import numpy as np
import pytest
import torch
from skimage.color import rgb2yuv, yuv2rgb

from colorunet.core.color import U_MAX, V_MAX, luma_chroma_to_rgb, rgb_to_luma, rgb_to_yuv, yuv_to_rgb


@pytest.fixture
def rgb():
    return np.random.default_rng(1).uniform(0, 1, (17, 23, 3))


def test_rgb_to_yuv_matches_skimage(rgb):
    np.testing.assert_allclose(rgb_to_yuv(rgb), rgb2yuv(rgb), atol=1e-6)


def test_yuv_to_rgb_matches_skimage(rgb):
    yuv = rgb2yuv(rgb)
    np.testing.assert_allclose(yuv_to_rgb(yuv), yuv2rgb(yuv), atol=1e-6)


def test_round_trip(rgb):
    np.testing.assert_allclose(yuv_to_rgb(rgb_to_yuv(rgb)), rgb, atol=1e-6)


def test_torch_channel_axis_matches_numpy(rgb):
    t = torch.from_numpy(rgb).permute(2, 0, 1)[None]  # (1, 3, H, W)
    out = rgb_to_yuv(t, channel_axis=1)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(out, rgb2yuv(rgb), atol=1e-6)
    back = yuv_to_rgb(rgb_to_yuv(t, channel_axis=1), channel_axis=1)
    np.testing.assert_allclose(back.numpy(), t.numpy(), atol=1e-6)


def test_luma_only(rgb):
    np.testing.assert_allclose(rgb_to_luma(rgb), rgb2yuv(rgb)[..., 0], atol=1e-7)


def test_chroma_extent_is_the_rgb_cube():
    corners = np.array([[r, g, b] for r in (0, 1) for g in (0, 1) for b in (0, 1)], dtype=float)
    yuv = rgb_to_yuv(corners)
    assert np.abs(yuv[:, 1]).max() == pytest.approx(U_MAX, abs=1e-3)
    assert np.abs(yuv[:, 2]).max() == pytest.approx(V_MAX, abs=1e-3)


def test_wrong_channel_count_is_refused():
    with pytest.raises(ValueError, match="3 channels"):
        rgb_to_yuv(np.zeros((4, 4, 2)))


def test_recombination_keeps_luma_and_gamut():
    rng = np.random.default_rng(2)
    y = rng.uniform(0, 1, (50, 40)).astype(np.float32)
    y[0, :5] = [0.0, 1.0, 0.001, 0.999, 0.5]  # extremes, where any chroma is out of gamut
    u = rng.uniform(-U_MAX, U_MAX, y.shape).astype(np.float32)
    v = rng.uniform(-V_MAX, V_MAX, y.shape).astype(np.float32)
    out = luma_chroma_to_rgb(y, u, v)
    assert out.min() >= 0 and out.max() <= 1
    np.testing.assert_allclose(rgb_to_luma(out), y, atol=1e-5)
    # Hue is kept: the chroma that comes out is the asked chroma, scaled by s in [0, 1].
    yuv = rgb_to_yuv(out)
    cross = yuv[..., 1] * v - yuv[..., 2] * u
    dot = yuv[..., 1] * u + yuv[..., 2] * v
    np.testing.assert_allclose(cross, 0, atol=1e-5)
    assert (dot >= -1e-6).all()


def test_recombination_is_exact_inside_the_gamut(rgb):
    yuv = rgb_to_yuv(rgb).astype(np.float32)
    out = luma_chroma_to_rgb(yuv[..., 0], yuv[..., 1], yuv[..., 2])
    np.testing.assert_allclose(out, rgb, atol=1e-5)
