"""Confidence-guided propagation and colour hints (refine.py)."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import colorunet
from colorunet.core.color import rgb_to_luma, rgb_to_yuv
from colorunet.evaluation.metrics import stain_fraction
from colorunet.inference.pipeline import default_sample
from colorunet.inference.refine import HintError, affinity_laplacian, load_hints, parse_hints, rasterize_hints, refine_chroma


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


def _stained_prediction(stain_conf: float = 0.1):
    """A Prediction of the shipped model for two flat regions, with a 4×4 stain of a class of its own
    inside the left one, predicted at probability ``stain_conf``; the classes are the model's own."""
    import torch

    from colorunet.inference.pipeline import Prediction, get_model

    m = get_model("default")
    n = m.quantizer.num_classes
    centers = m.quantizer.centers
    left, right = 0, 1
    stain = int(np.argmax(np.hypot(*(centers - centers[left]).T)))  # the class farthest from the left region's colour
    y = _two_regions().astype(np.float32)

    def logits_for(cls: int, p: float) -> np.ndarray:
        # top class at probability p, the rest share 1 - p evenly
        probs = np.full(n, (1 - p) / (n - 1))
        probs[cls] = p
        return np.log(probs)

    scores = np.empty((n,) + y.shape, np.float32)
    scores[:, :, :30] = logits_for(left, 0.9)[:, None, None]
    scores[:, :, 30:] = logits_for(right, 0.9)[:, None, None]
    scores[:, 10:14, 8:12] = logits_for(stain, stain_conf)[:, None, None]
    return Prediction(m, y, None, torch.from_numpy(scores)[None], y), centers[left], centers[stain]


def test_refine_through_the_pipeline_removes_a_stain_that_is_its_own_class():
    from colorunet.inference.pipeline import render

    pred, _, _ = _stained_prediction(0.1)

    def uv_of(img):
        return rgb_to_yuv(np.asarray(img, dtype=float) / 255)[..., 1:]

    plain = uv_of(render(pred, mode="mode").image)
    refined = uv_of(render(pred, mode="mode", refine=True).image)
    left = plain[25:38, 2:26].reshape(-1, 2).mean(0)  # the left region's colour, away from the stain
    # without refinement the stain shows its own class's colour...
    assert np.hypot(*(plain[11:13, 9:11] - left).reshape(-1, 2).T).min() > 0.1
    # ...with it, it takes the colour of the region around it (the edge keeps the other region's out)
    np.testing.assert_allclose(refined[10:14, 8:12].reshape(-1, 2), np.tile(left, (16, 1)), atol=0.02)
    np.testing.assert_allclose(refined[:, 35:].reshape(-1, 2).mean(0), plain[:, 35:].reshape(-1, 2).mean(0), atol=0.01)


def test_seeds_are_class_cores_ranked_by_confidence_with_a_floor():
    from colorunet.inference.refine import confident_seeds

    classes = np.zeros((20, 20), int)
    classes[:, 10:] = 1
    classes[5:9, 3:7] = 2  # a 4×4 region: no core at radius 2
    conf = np.full((20, 20), 0.5)  # every confidence tied
    seeds = confident_seeds(conf, classes, num_classes=8, fraction=0.3, core_radius=2)
    assert not seeds[classes == 2].any()
    # ties do not make every pixel a seed: 30% of each core, exactly
    for c in (0, 1):
        from scipy.ndimage import binary_erosion

        core = binary_erosion(classes == c, iterations=2, border_value=1)
        assert seeds[classes == c].sum() == round(0.3 * core.sum()) and not seeds[(classes == c) & ~core].any()
    # the most confident of a core are taken first
    conf[2, 15] = 0.9
    assert confident_seeds(conf, classes, 8, fraction=0.01, core_radius=2)[2, 15]
    # a flat distribution (top probability below twice the uniform 1/8) seeds nothing
    assert not confident_seeds(np.full((20, 20), 0.2), classes, 8).any()


def test_refine_on_a_regression_model_is_a_clear_error_and_hints_still_work():
    from colorunet.core.model import ColorUNet, ColorUNetConfig
    from colorunet.inference.pipeline import colorize_full
    from colorunet.core.weights import ColorModel

    regression = ColorModel(ColorUNet(ColorUNetConfig(widths=(8, 16, 32), head="regression")).eval(), None)
    img = Image.fromarray((np.random.default_rng(0).uniform(0, 1, (32, 48)) * 255).astype(np.uint8))
    with pytest.raises(ValueError, match="needs a classification model"):
        colorize_full(img, regression, refine=True)
    hinted = colorize_full(img, regression, hints={"points": [{"x": 10, "y": 10, "color": "#c0392b"}]}).image
    assert hinted.size == img.size


def test_hint_parsing_and_errors(tmp_path):
    h = parse_hints(
        {"points": [{"x": 1, "y": 2, "color": "#ff0000"}], "strokes": [{"points": [[0, 0], [5, 5]], "color": "0f0", "width": 2}]}
    )
    assert h.points == [(1.0, 2.0, (1.0, 0.0, 0.0))] and h.strokes[0][1] == (0.0, 1.0, 0.0)
    for bad, words in [({"points": [{"x": 1, "y": 2, "color": "red"}]}, "#rrggbb"), ({"dots": []}, "unknown key"),
                       ({"points": [{"x": 1}]}, "malformed"), ({"strokes": [{"points": [], "color": "#000"}]}, "no points")]:
        with pytest.raises(HintError, match=words):
            parse_hints(bad)
    (tmp_path / "h.json").write_text("{nope")
    with pytest.raises(HintError, match="not valid JSON"):
        load_hints(tmp_path / "h.json")


def test_rasterized_hints_land_at_the_working_size():
    h = parse_hints(
        {
            "points": [{"x": 99, "y": 49, "color": "#2e86c1"}],
            "strokes": [{"points": [[0, 0], [100, 0]], "color": "#c0392b", "width": 4}],
        }
    )
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


@pytest.mark.slow
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
