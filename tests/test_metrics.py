import numpy as np
import pytest
from skimage.color import rgb2lab
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from colorunet.core.color import rgb_to_lab
from colorunet.evaluation.metrics import AccuracyCurve, ab_bins, colorfulness, psnr, ssim


def test_lab_matches_skimage():
    rgb = np.random.default_rng(0).uniform(0, 1, (30, 40, 3))
    rgb[0, :3] = [[0, 0, 0], [1, 1, 1], [0.01, 0.02, 0.0]]
    np.testing.assert_allclose(rgb_to_lab(rgb), rgb2lab(rgb), atol=1e-3)


def test_psnr_and_ssim_match_skimage():
    rng = np.random.default_rng(1)
    a = rng.uniform(0, 1, (40, 50, 3))
    b = np.clip(a + rng.normal(0, 0.05, a.shape), 0, 1)
    assert psnr(b, a) == pytest.approx(peak_signal_noise_ratio(a, b, data_range=1.0))
    assert ssim(b, a) == pytest.approx(structural_similarity(b, a, channel_axis=-1, data_range=1.0))
    # hand case: every value off by 0.1 -> MSE 0.01 -> 20 dB
    assert psnr(np.full((2, 2, 3), 0.5), np.full((2, 2, 3), 0.4)) == pytest.approx(20.0)
    assert psnr(a, a) == float("inf")


def test_colorfulness_hand_computed():
    assert colorfulness(np.full((4, 4, 3), 0.3)) == 0.0  # grey
    # half pure red, half pure green: rg = ±255 (σ 255, μ 0); yb = 127.5 (σ 0, μ 127.5)
    img = np.zeros((2, 2, 3))
    img[0, :, 0] = 1
    img[1, :, 1] = 1
    assert colorfulness(img) == pytest.approx(255 + 0.3 * 127.5)


def test_accuracy_curve_hand_computed():
    curve = AccuracyCurve()
    true = np.zeros((1, 2, 3)) + 0.5  # grey: ab = (0, 0)
    true[0, 1] = [1.0, 0.0, 0.0]  # red pixel
    pred = true.copy()
    pred[0, 1] = [0.5, 0.5, 0.5]  # red predicted grey: error = |ab(red)| ≈ 104.6
    err = curve.add(pred, true)
    gap = np.hypot(*(rgb_to_lab(np.array([1.0, 0, 0])) - rgb_to_lab(np.array([0.5, 0.5, 0.5])))[1:])
    assert err[0, 0] == 0 and err[0, 1] == pytest.approx(gap, abs=1e-9)
    c = curve.curve()
    k = int(np.ceil(gap))  # first threshold the red pixel is within
    assert c[0] == 0.5 and c[k - 1] == 0.5 and c[k] == 1.0
    assert curve.auc() == pytest.approx(100 * (0.5 * k + (151 - k)) / 151)


def test_rebalanced_curve_weights_pixels_by_the_inverse_prior_of_their_true_cell():
    red_ab = rgb_to_lab(np.array([1.0, 0, 0]))[1:]
    grey_cell, red_cell = ab_bins(np.zeros(2)), ab_bins(red_ab)
    prior = np.zeros(23 * 23)
    prior[grey_cell], prior[red_cell] = 0.8, 0.2
    curve = AccuracyCurve(prior)
    true = np.full((1, 10, 3), 0.5)
    true[0, 9] = [1.0, 0.0, 0.0]
    pred = np.full((1, 10, 3), 0.5)  # grey everywhere: nine grey pixels exact, the red one off by |ab(red)|
    curve.add(pred, true)
    k = int(np.ceil(np.hypot(*red_ab)))
    # by hand: weights 1/0.8 for each grey pixel, 1/0.2 for the red one
    w_grey, w_red = 9 / 0.8, 1 / 0.2
    below_k = w_grey / (w_grey + w_red)
    assert curve.auc() == pytest.approx(100 * (0.9 * k + (151 - k)) / 151)
    assert curve.auc(rebalanced=True) == pytest.approx(100 * (below_k * k + (151 - k)) / 151)
    # a cell the prior never saw counts as PRIOR_FLOOR, not as infinitely rare
    from colorunet.evaluation.metrics import PRIOR_FLOOR, rebalancing_weights

    assert rebalancing_weights(prior)[0] == 1 / PRIOR_FLOOR


def test_ab_cells_are_centred_on_multiples_of_ten():
    centre = 11 * 23 + 11  # ab = (0, 0)
    ab = np.array([[0.0, 0.0], [4.9, -4.9], [5.1, 0.0], [-5.1, 0.0], [-110.0, -110.0], [110.0, 110.0], [200.0, -200.0]])
    assert ab_bins(ab).tolist() == [centre, centre, centre + 23, centre - 23, 0, 23 * 23 - 1, 22 * 23]


def test_shipped_evaluation_prior():
    from colorunet.evaluation.metrics import eval_prior

    p = eval_prior()
    assert p.shape == (23 * 23,) and p.sum() == pytest.approx(1) and p.min() >= 0
    # photos are mostly near-neutral: the cell of grey is the most frequent one
    assert np.argmax(p) == 11 * 23 + 11


def test_smoothing_of_a_histogram_by_hand():
    from colorunet.core.quantize import smooth_grid

    counts = np.zeros(25)
    counts[12] = 7.0  # one spike in the middle of a 5×5 grid
    out = smooth_grid(counts, 5, 0.5).reshape(5, 5)
    g = np.exp(-np.arange(-2, 3) ** 2 / (2 * 0.5**2))  # the sampled Gaussian, ±4σ = ±2 cells
    np.testing.assert_allclose(out, np.outer(g, g) / np.outer(g, g).sum(), rtol=1e-9)
    np.testing.assert_allclose(smooth_grid(counts, 5, 0), counts / 7)


def test_stain_fraction():
    from colorunet.evaluation.metrics import stain_fraction

    flat = np.full((64, 64, 3), 0.4)
    flat[..., 0] = 0.6  # an even reddish grey: no stain
    assert stain_fraction(flat) == 0
    stained = flat.copy()
    stained[20:24, 20:24] = [0.35, 0.45, 0.5]  # a bluish blotch of about the same luminance
    assert stain_fraction(stained) == pytest.approx(16 / 64**2, rel=0.01)
    edge = flat.copy()
    edge[:, 32:] = [0.1, 0.1, 0.9]  # a real edge (luminance differs): not a stain
    assert stain_fraction(edge) == 0
