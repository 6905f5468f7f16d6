"""Confidence-guided propagation and colour hints (refine.py)."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import colorunet
from colorunet.color import rgb_to_luma, rgb_to_yuv
from colorunet.metrics import stain_fraction
from colorunet.pipeline import default_sample
from colorunet.refine import HintError, affinity_laplacian, load_hints, parse_hints, propagate, rasterize_hints, refine_chroma


def _two_regions(h=40, w=60):
    """Dark left half, bright right half: one luminance edge down the middle."""
    y = np.full((h, w), 0.2)
    y[:, w // 2 :] = 0.8
    return y


def test_laplacian_is_symmetric_with_zero_row_sums_and_weak_across_edges():
    y = _two_regions(10, 12)
    L = affinity_laplacian(y)
    assert abs(L - L.T).max() < 1e-12
    np.testing.assert_allclose(np.asarray(L.sum(axis=1)).ravel(), 0, atol=1e-9)
    W = -L.tocoo()
    across = [v for r, c, v in zip(W.row, W.col, W.data) if r != c and (r % 12 < 6) != (c % 12 < 6)]
    within = [v for r, c, v in zip(W.row, W.col, W.data) if r != c and (r % 12 < 6) == (c % 12 < 6)]
    assert max(across) < 1e-6 and min(within) > 0.99


def test_a_hint_fills_its_region_and_stops_at_the_edge():
    y = _two_regions()
    net = np.zeros(y.shape + (2,))
    mask = np.zeros(y.shape, bool)
    mask[20, 5] = True
    hint_uv = np.zeros(y.shape + (2,))
    hint_uv[20, 5] = [0.1, -0.2]
    out = refine_chroma(y, net, None, mask, hint_uv)
    left, right = out[:, :30], out[:, 30:]
    np.testing.assert_allclose(left.reshape(-1, 2).mean(0), [0.1, -0.2], atol=0.01)  # the whole dark region
    assert np.abs(right).max() < 0.01  # the bright one keeps the network's (zero) chroma


def test_refine_replaces_unconfident_stains_by_confident_neighbours():
    y = _two_regions()
    net = np.zeros(y.shape + (2,))
    net[:, :30] = [0.05, 0.05]
    net[:, 30:] = [-0.05, 0.1]
    net[10:14, 8:12] = [0.3, -0.3]  # a stain...
    conf = np.ones(y.shape)
    conf[10:14, 8:12] = 0.1  # ...the network was unsure of
    out = refine_chroma(y, net, conf)
    np.testing.assert_allclose(out[10:14, 8:12].reshape(-1, 2), np.tile([0.05, 0.05], (16, 1)), atol=0.005)
    np.testing.assert_allclose(out[:, 35:].reshape(-1, 2).mean(0), [-0.05, 0.1], atol=0.005)


def test_propagate_with_only_data_terms_returns_the_targets():
    y = np.random.default_rng(0).uniform(0, 1, (8, 9))
    uv = np.random.default_rng(1).normal(0, 0.1, (8, 9, 2))
    np.testing.assert_allclose(propagate(y, uv, np.full(y.shape, 1e8)), uv, atol=1e-5)


def test_hint_parsing_and_errors(tmp_path):
    h = parse_hints({"points": [{"x": 1, "y": 2, "color": "#ff0000"}], "strokes": [{"points": [[0, 0], [5, 5]], "color": "0f0", "width": 2}]})
    assert h.points == [(1.0, 2.0, (1.0, 0.0, 0.0))] and h.strokes[0][1] == (0.0, 1.0, 0.0)
    for bad, words in [({"points": [{"x": 1, "y": 2, "color": "red"}]}, "#rrggbb"), ({"dots": []}, "unknown key"),
                       ({"points": [{"x": 1}]}, "malformed"), ({"strokes": [{"points": [], "color": "#000"}]}, "no points")]:
        with pytest.raises(HintError, match=words):
            parse_hints(bad)
    (tmp_path / "h.json").write_text("{nope")
    with pytest.raises(HintError, match="not valid JSON"):
        load_hints(tmp_path / "h.json")


def test_rasterized_hints_land_at_the_working_size():
    h = parse_hints({"points": [{"x": 99, "y": 49, "color": "#2e86c1"}], "strokes": [{"points": [[0, 0], [100, 0]], "color": "#c0392b", "width": 4}]})
    mask, uv = rasterize_hints(h, (50, 100), (25, 50))
    assert mask[24, 49] and mask[0, 25] and not mask[12, 25]
    want = rgb_to_yuv(np.array([0x2E, 0x86, 0xC1]) / 255)[1:]
    np.testing.assert_allclose(uv[24, 49], want, atol=0.01)


def test_colorize_with_hints_takes_their_colour_and_keeps_luma():
    img = Image.open(default_sample())
    out = colorunet.colorize(img, hints={"points": [{"x": 100, "y": 300, "color": "#c0392b"}]})
    a = np.asarray(out, dtype=float) / 255
    u, v = rgb_to_yuv(a)[290:310, 90:110, 1:].reshape(-1, 2).mean(0)
    want = rgb_to_yuv(np.array([0xC0, 0x39, 0x2B]) / 255)[1:]
    # red where the user clicked: the hue of the hint (its saturation is capped by the
    # gamut at the coat's dark luminance)
    assert (u * want[0] + v * want[1]) / (np.hypot(u, v) * np.hypot(*want)) > 0.95 and np.hypot(u, v) > 0.05
    assert np.abs(rgb_to_luma(a) - np.asarray(img.convert("L")) / 255).max() <= 0.5 / 255 + 1e-9


def test_refine_reduces_stains_on_the_sample():
    img = Image.open(default_sample())
    plain = np.asarray(colorunet.colorize(img), dtype=float) / 255
    refined = np.asarray(colorunet.colorize(img, refine=True), dtype=float) / 255
    assert stain_fraction(refined) < 0.5 * stain_fraction(plain)


def test_cli_refine_and_hints(tmp_path):
    hints = tmp_path / "hints.json"
    hints.write_text(json.dumps({"points": [{"x": 100, "y": 300, "color": "#c0392b"}]}))
    r = subprocess.run([sys.executable, "-m", "colorunet", "colorize", str(default_sample()), "-o", str(tmp_path / "o.png"),
                        "--refine", "--hints", str(hints)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    hints.write_text('{"points": [{"x": 1, "y": 1, "color": "blue"}]}')
    r = subprocess.run([sys.executable, "-m", "colorunet", "colorize", str(default_sample()), "-o", str(tmp_path / "p.png"),
                        "--hints", str(hints)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "hints.json" in r.stderr and "#rrggbb" in r.stderr and "Traceback" not in r.stderr
