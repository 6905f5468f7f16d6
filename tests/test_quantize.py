import numpy as np
import pytest

from colorunet.core.color import U_MAX, V_MAX, rgb_to_yuv
from colorunet.core.quantize import GRID_SIZE, ChromaHistogram, Quantizer, cell_centers, cell_index, cell_size


def test_cell_index_hand_values():
    du, dv = cell_size()
    assert (du, dv) == pytest.approx((0.0872, 0.123))
    u = np.array([-U_MAX, U_MAX, 0.0, -0.001, 10.0])
    v = np.array([-V_MAX, V_MAX, 0.0, -0.001, -10.0])
    # (0,0) -> cell 0; top corner -> 99; grey sits on the edge, in cell (5, 5) = 55;
    # just below grey -> (4, 4) = 44; out of range -> clamped to (9, 0) = 90.
    assert cell_index(u, v).tolist() == [0, 99, 55, 44, 90]


def test_cell_centres_lie_in_their_cells():
    c = cell_centers()
    assert cell_index(c[:, 0], c[:, 1]).tolist() == list(range(GRID_SIZE**2))


def _hist_from_points(points):
    pts = np.array(points, dtype=float)
    return ChromaHistogram.of(pts[:, 0], pts[:, 1])


def test_fit_keeps_most_frequent_cells_and_class_means():
    c = cell_centers()
    a, b, rare = c[55], c[12], c[90]
    pts = [a + [0.01, 0.0]] * 5 + [a - [0.01, 0.02]] * 5 + [b] * 4 + [rare] * 1
    q = Quantizer.fit(_hist_from_points(pts), num_classes=2)
    assert q.kept_cells.tolist() == [55, 12]
    # the rare colour of cell 90 joins its nearest kept cell
    d55 = np.sum((c[90] - c[55]) ** 2)
    d12 = np.sum((c[90] - c[12]) ** 2)
    joins = 0 if d55 < d12 else 1
    assert q.encode(np.array([rare[0]]), np.array([rare[1]])).tolist() == [joins]
    counts = np.array([10.0, 4.0])
    counts[joins] += 1
    np.testing.assert_allclose(q.prior, counts / 15)
    # centres are the mean chroma of every pixel assigned to the class
    members = {0: [a + [0.01, 0.0]] * 5 + [a - [0.01, 0.02]] * 5, 1: [b] * 4}
    members[joins].append(rare)
    for k in (0, 1):
        np.testing.assert_allclose(q.centers[k], np.mean(members[k], axis=0), atol=1e-6)


def test_kept_cell_maps_to_itself_and_every_cell_to_its_nearest_kept():
    rng = np.random.default_rng(0)
    counts = rng.integers(1, 1000, GRID_SIZE**2).astype(float)
    c = cell_centers()
    hist = ChromaHistogram(counts, counts * c[:, 0], counts * c[:, 1])
    q = Quantizer.fit(hist, 32)
    lut = q.cell_to_class
    for i, cell in enumerate(q.kept_cells):
        assert lut[cell] == i
    d = ((c[:, None] - c[None, q.kept_cells]) ** 2).sum(-1)
    np.testing.assert_allclose(d[np.arange(100), lut], d.min(1))


def test_encode_decode_error_is_bounded_by_the_bin_size():
    rng = np.random.default_rng(3)
    rgb = rng.uniform(0, 1, (20000, 3))
    yuv = rgb_to_yuv(rgb)
    u, v = yuv[:, 1], yuv[:, 2]
    q = Quantizer.fit(ChromaHistogram.of(u, v), num_classes=100)  # every occupied cell kept
    centre = q.centers[q.encode(u, v)]
    du, dv = cell_size()
    # A class mean lies in its cell, so the error is within one cell along each axis.
    assert np.all(np.abs(centre[:, 0] - u) <= du + 1e-9)
    assert np.all(np.abs(centre[:, 1] - v) <= dv + 1e-9)
    # With n = 32 colours of dropped cells move to a neighbour: error within the
    # distance to the nearest kept cell centre plus one cell.
    q32 = Quantizer.fit(ChromaHistogram.of(u, v), num_classes=32)
    err = np.hypot(*(q32.centers[q32.encode(u, v)] - np.stack([u, v], 1)).T)
    geo = cell_centers()[q32.kept_cells][q32.encode(u, v)]
    bound = np.hypot(*(geo - np.stack([u, v], 1)).T) + np.hypot(du, dv)
    assert np.all(err <= bound + 1e-9)


def test_rebalancing_weights_match_hand_computation():
    q = Quantizer(np.array([0, 1, 2]), np.zeros((3, 2), np.float32), np.array([0.5, 0.3, 0.2]))
    # w ∝ 1 / (0.5 p + 0.5 / 3) = [2.4, 3.157895, 3.75]; E_p[w] = 2.897368.
    np.testing.assert_allclose(q.rebalance_weights(0.5), [0.828338, 1.089918, 1.294278], atol=1e-6)
    np.testing.assert_allclose(np.sum(q.prior * q.rebalance_weights(0.3)), 1.0)
    np.testing.assert_allclose(q.rebalance_weights(1.0), [1, 1, 1])
    with pytest.raises(ValueError, match="lambda"):
        q.rebalance_weights(0.0)


def test_serialisation_round_trip():
    rng = np.random.default_rng(4)
    u, v = rng.normal(0, 0.1, 5000), rng.normal(0, 0.1, 5000)
    q = Quantizer.fit(ChromaHistogram.of(u, v), 16)
    r = Quantizer.from_arrays(q.to_arrays())
    np.testing.assert_array_equal(r.kept_cells, q.kept_cells)
    np.testing.assert_array_equal(r.centers, q.centers)
    np.testing.assert_array_equal(r.prior, q.prior)
    np.testing.assert_array_equal(r.encode(u, v), q.encode(u, v))


def test_bad_fits_are_refused():
    with pytest.raises(ValueError, match="empty"):
        Quantizer.fit(ChromaHistogram.empty(), 32)
    with pytest.raises(ValueError, match="num_classes"):
        Quantizer.fit(ChromaHistogram.of(np.zeros(3), np.zeros(3)), 101)


def test_prior_smoothing_keeps_the_cells_and_moves_prior_mass_to_neighbours():
    from colorunet.core.quantize import smooth_grid

    counts = np.zeros(GRID_SIZE * GRID_SIZE)
    counts[[44, 45, 55]] = [1000.0, 600.0, 50.0]
    hist = ChromaHistogram(counts, counts * 0, counts * 0, GRID_SIZE, "yuv")
    raw, smoothed = Quantizer.fit(hist, 3), Quantizer.fit(hist, 3, prior_sigma=0.5)
    assert raw.kept_cells.tolist() == smoothed.kept_cells.tolist() == [44, 45, 55]
    np.testing.assert_allclose(raw.prior, [1000 / 1650, 600 / 1650, 50 / 1650])
    # by hand: each class receives the smoothed mass of the cells nearest it
    lut = raw.cell_to_class
    want = np.bincount(lut, weights=smooth_grid(counts, GRID_SIZE, 0.5), minlength=3)
    np.testing.assert_allclose(smoothed.prior, want / want.sum())
    assert smoothed.prior[2] > raw.prior[2]  # the rare class gains from its neighbours
    np.testing.assert_allclose(smoothed.centers, raw.centers)
    with pytest.raises(ValueError, match="σ"):
        Quantizer.fit(hist, 3, prior_sigma=float("nan"))


def test_refit_keeps_classes_and_mixes_in_the_old_prior_and_decode():
    centres = cell_centers()
    rng = np.random.default_rng(0)
    cells = np.array([45, 54, 44, 55])
    u, v = (np.repeat(centres[cells, k], [50, 30, 15, 5]) + rng.normal(0, 0.005, 100) for k in (0, 1))
    q = Quantizer.fit(ChromaHistogram.of(u, v), num_classes=4)
    # new photos: 10 pixels in the cell of the third class, off its old decode chroma by (+0.02, -0.01)
    k = int(np.flatnonzero(q.kept_cells == 44)[0])
    pixel = q.centers[k] + np.array([0.02, -0.01], np.float32)
    new = q.refit_to(ChromaHistogram.of(np.full(10, pixel[0]), np.full(10, pixel[1])))
    assert np.array_equal(new.kept_cells, q.kept_cells)
    expected = 0.01 * q.prior
    expected[k] += 0.99
    assert new.prior == pytest.approx(expected)
    # by hand: the mixture's mean in class k weighs the new pixels by 0.99 and the old class by 0.01·P̂(k)
    w_new, w_old = 0.99, 0.01 * q.prior[k]
    assert new.centers[k] == pytest.approx((w_new * pixel + w_old * q.centers[k]) / (w_new + w_old), abs=1e-6)
    others = np.arange(4) != k  # classes the new photos never reach keep their decode chroma
    assert np.allclose(new.centers[others], q.centers[others])
    # a class whose old prior is 0 and which the new photos miss too keeps its chroma (no 0/0)
    zero = Quantizer(q.kept_cells, q.centers, np.array([0.5, 0.5, 0.0, 0.0]), q.grid_size, q.space)
    refit = zero.refit_to(ChromaHistogram.of(np.full(10, centres[45, 0]), np.full(10, centres[45, 1])))
    assert np.isfinite(refit.centers).all() and np.allclose(refit.centers[2:], q.centers[2:])
    with pytest.raises(ValueError, match="empty"):
        q.refit_to(ChromaHistogram.empty())
    with pytest.raises(ValueError, match="share"):
        q.refit_to(ChromaHistogram.of(u, v), keep=0.0)
    with pytest.raises(ValueError, match="σ"):  # the same check as a new quantiser's
        q.refit_to(ChromaHistogram.of(u, v), prior_sigma=float("nan"))


def test_grown_appends_the_frequent_cells_outside_and_keeps_the_old_classes():
    centres = cell_centers()
    rng = np.random.default_rng(1)
    q = Quantizer.fit(ChromaHistogram.of(*(np.repeat(centres[[45, 54, 44], k], [50, 30, 20]) for k in (0, 1))), 3)
    # new photos: 60 pixels in kept cell 45, 25 in cell 12, 10 in cell 90, 5 in cell 99
    cells = np.repeat([45, 12, 90, 99], [60, 25, 10, 5])
    u, v = (centres[cells, k] + rng.normal(0, 0.003, cells.size) for k in (0, 1))
    hist = ChromaHistogram.of(u, v)
    grown = q.grown(hist, 0.08)  # 12 (25%) and 90 (10%) qualify; 99 (5%) does not; 45 is already a class
    assert grown.kept_cells.tolist() == [45, 54, 44, 12, 90]
    assert np.array_equal(grown.centers[:3], q.centers) and np.array_equal(grown.prior[:3], q.prior)
    np.testing.assert_allclose(grown.centers[3:], centres[[12, 90]], atol=1e-6)
    assert grown.prior[3:].tolist() == [0.0, 0.0]
    assert q.grown(hist, 0.3) is q  # nothing outside reaches 30%
    assert q.share_outside(hist) == pytest.approx(0.40) and grown.share_outside(hist) == pytest.approx(0.05)
    assert q.share_outside(ChromaHistogram.empty()) == 0.0
    # refitting the grown classes: a new class decodes to its own pixels' mean, with 99% of the prior they hold
    refit = grown.refit_to(hist)
    lut = refit.cell_to_class
    for k, cell in ((3, 12), (4, 90)):
        members = lut[cell_index(u, v)] == k
        assert refit.centers[k] == pytest.approx([u[members].mean(), v[members].mean()], abs=1e-6)
        assert refit.prior[k] == pytest.approx(0.99 * members.mean())
    for bad in (0.0, -0.1, 1.5, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="share"):
            q.grown(hist, bad)
    with pytest.raises(ValueError, match="empty"):
        q.grown(ChromaHistogram.empty(), 0.1)
