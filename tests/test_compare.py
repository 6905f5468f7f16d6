"""colorunet compare, end to end on tiny photos; the eccv16 baseline's Lab quantiser."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from colorunet.apps.compare import Contender, best_rows
from colorunet.core.quantize import LAB_NUM_CLASSES, ChromaHistogram, Quantizer, cell_centers, in_gamut_cells


def test_in_gamut_bins_of_the_lab_grid():
    import warnings

    from skimage.color import lab2xyz
    from skimage.color.colorconv import rgb_from_xyz

    cells = in_gamut_cells()
    assert len(cells) == LAB_NUM_CLASSES
    centres = cell_centers(23, "lab")
    assert np.allclose(centres[:, 0].reshape(23, 23)[:, 0], np.arange(-110, 111, 10))  # Zhang's grid: multiples of 10
    # Independent oracle: scikit-image's Lab -> XYZ and its XYZ -> linear sRGB matrix, on points
    # spread over each cell at every lightness, with no clipping: a cell is in gamut if any lands in [0, 1]³.
    rng = np.random.default_rng(0)
    grid = np.stack(
        np.meshgrid(np.linspace(0, 100, 101), np.linspace(-5, 5, 5), np.linspace(-5, 5, 5), indexing="ij"), -1
    ).reshape(-1, 3)
    kept = set(cells.tolist())
    for cell in rng.choice(23 * 23, 40, replace=False):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # negative Z for far-out ab: expected here
            xyz = lab2xyz(grid + [0, *centres[cell]])
        linear = xyz @ rgb_from_xyz.T
        assert np.all((linear >= 0) & (linear <= 1), axis=-1).any() == (cell in kept), cell
    # grey is in gamut, (a, b) = (110, -110) is not
    assert 11 * 23 + 11 in cells and 22 * 23 + 0 not in cells


def test_lab_quantiser_fit_and_round_trip():
    from colorunet.core.color import lab_to_rgb, rgb_to_lab, to_lightness_chroma

    rng = np.random.default_rng(1)
    rgb = rng.uniform(0, 1, (64, 64, 3))
    light, ab = to_lightness_chroma(rgb, "lab")
    q = Quantizer.fit_in_gamut(ChromaHistogram.of(ab[..., 0], ab[..., 1], 23, "lab"))
    assert q.num_classes == LAB_NUM_CLASSES and q.space == "lab" and abs(q.prior.sum() - 1) < 1e-9
    err = np.abs(q.centers[q.encode(ab[..., 0], ab[..., 1])] - ab)
    assert err.max() <= 10.0 + 1e-3  # within a cell (10 Lab units) of the truth
    q2 = Quantizer.from_arrays(q.to_arrays())
    assert q2.space == "lab" and np.array_equal(q2.kept_cells, q.kept_cells)
    assert np.abs(lab_to_rgb(rgb_to_lab(rgb)) - rgb).max() < 1e-9
    assert np.allclose(light, rgb_to_lab(rgb)[..., 0] / 100, atol=1e-6)


def test_contender_specs():
    assert Contender.parse("paper") == Contender("paper", "paper", {})
    c = Contender.parse("small=paper,lambda=1,augment=false,widths=8/16/32")
    assert c.preset == "paper" and c.overrides == {"rebalance_lambda": 1, "augment": False, "widths": (8, 16, 32)}
    with pytest.raises(ValueError, match="key=value"):
        Contender.parse("x=paper,lambda")


@pytest.mark.slow
def test_compare_end_to_end(photo_dir, tmp_path):
    evald = tmp_path / "eval"
    evald.mkdir()
    for p in sorted(photo_dir.glob("*.png"))[:2]:
        Image.open(p).save(evald / p.name)
    out = tmp_path / "cmp"
    args = [
        sys.executable,
        "-m",
        "colorunet",
        "compare",
        str(photo_dir),
        "--eval",
        str(evald),
        "--out",
        str(out),
        "--budget",
        "1.5",
        "--crop",
        "32",
        "--batch-size",
        "4",
        "--load-size",
        "64",
        "--temperatures",
        "0.38,1",
        "--contenders",
        "paper",
        "paper-regression",
        "eccv16",
        "no-aug=paper,augment=false",
        "-q",
    ]
    r = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((out / "results.json").read_text())
    assert set(res["runs"]) == {"paper", "paper-regression", "eccv16", "no-aug"}
    assert res["runs"]["eccv16"]["parameters"] > 100 * res["runs"]["paper"]["parameters"]
    assert res["runs"]["no-aug"]["overrides"] == {"augment": False}
    rows = {(row["contender"], row["temperature"]) for row in res["rows"]}
    assert {
        ("gray", None),
        ("mean-color", None),
        ("paper", 0.38),
        ("paper", 1.0),
        ("paper-regression", None),
        ("eccv16", 0.38),
    } <= rows
    gray = next(row for row in res["rows"] if row["contender"] == "gray")
    assert gray["colorfulness"] == 0.0
    for name in ("results.md", "metrics_vs_temperature.png", "metric_vs_cost.png"):
        assert (out / name).stat().st_size > 0
    table = (out / "results.md").read_text()
    assert table.count("\n| ") == len(res["rows"]) + 1 and "| eccv16 |" in table and table in r.stdout
    # every contender trained for the budget (set-up aside), however many steps that took it
    for name, run in res["runs"].items():
        rows = list(csv.DictReader(open(out / "runs" / name / "log.csv")))
        assert int(rows[-1]["step"]) == run["steps"] >= 1
        last_step_s = (
            float(rows[-1]["elapsed_s"]) - float(rows[-2]["elapsed_s"]) if len(rows) > 1 else float(rows[-1]["elapsed_s"])
        )
        assert 1.5 <= run["train_s"] <= 1.5 + last_step_s + 0.5, (name, run["train_s"])
    # the 32M-parameter net's steps take longer (per step: on a loaded machine both may fit only a couple in the budget)
    step_s = {name: res["runs"][name]["train_s"] / res["runs"][name]["steps"] for name in ("eccv16", "paper")}
    assert step_s["eccv16"] > step_s["paper"], step_s
    assert set(best_rows(res)) == {"paper", "paper-regression", "eccv16", "no-aug"}
    # a rerun keeps the trained runs and only evaluates
    r = subprocess.run(args[:-1] + ["--temperatures", "0.5"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and "already trained" in r.stderr, r.stderr[-2000:]
    # but not runs made with other settings
    other = [a if a != "1.5" else "3" for a in args]
    r = subprocess.run(other, capture_output=True, text=True, timeout=600)
    assert r.returncode == 2 and "trained with other settings (time_budget_s)" in r.stderr, r.stderr[-2000:]


def test_temperatures_are_checked_before_any_training():
    from colorunet.apps.compare import parse_temperatures

    assert parse_temperatures("0.38,1") == (0.38, 1.0)
    for bad in ("1e-40", "nan", "inf", "0"):
        with pytest.raises(ValueError, match="--temperatures: must be"):
            parse_temperatures(bad)


def test_every_contenders_settings_are_checked_before_any_trains(photo_dir, tmp_path):
    from colorunet.apps.compare import CompareConfig, compare

    contenders = [Contender.parse("paper"), Contender.parse("last=paper,seed=-5")]
    cc = CompareConfig(budget_s=60, crop=32, batch_size=2, load_size=64)
    with pytest.raises(ValueError, match="--seed: must be between 0"):
        compare(photo_dir, photo_dir, tmp_path / "cmp", contenders, cc, progress=False)
    assert not (tmp_path / "cmp").exists()  # nothing trained, nothing written
