"""A trained model's temperature, chosen on its validation photos (evaluation/temperature.py)."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from colorunet import colorize

from colorunet.core.weights import load_model
from colorunet.evaluation.evaluate import evaluate, evaluation_photos
from colorunet.evaluation.temperature import CANDIDATES, TemperatureScore, choose_temperature, pick


def S(t, auc, ratio):
    return TemperatureScore(t, auc, ratio)


def test_rule_takes_the_best_auc_that_keeps_the_colour():
    # T=1 scores highest but greys the photos out (70% of the originals' colourfulness): not taken
    assert pick([S(0.38, 65.0, 1.05), S(0.7, 66.0, 0.9), S(1.0, 67.0, 0.7)]) == 0.7
    # the band's edges count as inside
    assert pick([S(0.38, 60.0, 1.1), S(1.0, 59.0, 0.8)]) == 0.38
    # none inside: the nearest to the band, whatever its AuC
    assert pick([S(0.38, 60.0, 0.75), S(0.5, 61.0, 0.72), S(1.0, 64.0, 0.6)]) == 0.38
    assert pick([S(0.2, 60.0, 1.3), S(0.38, 58.0, 1.15)]) == 0.38
    # a tie in AuC goes to the lower temperature (the more vivid)
    assert pick([S(0.5, 62.0, 0.9), S(0.7, 62.0, 0.85)]) == 0.5
    with pytest.raises(ValueError):
        pick([])


def test_scores_are_those_evaluate_gives(photo_dir):
    """The chooser decodes once per temperature from one prediction; `colorunet evaluate -t T` runs
    the whole pipeline per temperature. They must agree."""
    photos = evaluation_photos(photo_dir)
    choice = choose_temperature(photos, "default", candidates=(0.38, 1.0))
    assert choice.photos == len(photos)
    for s in choice.scores:
        ev = evaluate(photos, "default", s.temperature, progress=False).metrics
        assert s.auc_rebalanced == pytest.approx(ev["auc_rebalanced"], abs=1e-9)
        assert s.colorfulness_ratio == pytest.approx(ev["colorfulness"] / ev["colorfulness_true"], rel=1e-9)
    assert choice.temperature == pick(list(choice.scores))


def test_regression_model_has_no_temperature(photo_dir, tmp_path):
    from colorunet.training.trainer import Trainer, resolve_configs

    mc, cfg = resolve_configs("paper-regression", {}, {"steps": 1, "batch_size": 2, "crop": 32, "load_size": 64})
    path = Trainer(photo_dir, tmp_path / "reg", mc, cfg, progress=False).run()
    with pytest.raises(ValueError, match="regression model has no temperature"):
        choose_temperature(evaluation_photos(photo_dir), path)


@pytest.mark.slow
def test_train_writes_the_temperature_it_measured(photo_dir, tmp_path):
    def train(out, *extra):
        args = [sys.executable, "-m", "colorunet", "train", photo_dir, "--out", out, "--init", "default", "--steps", "2",
                "--batch-size", "2", "--crop", "32", "--load-size", "64", "--val-fraction", "0.5", *extra]
        r = subprocess.run(list(map(str, args)), capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        return r.stderr

    log = train(tmp_path / "measured")
    tuned = load_model(tmp_path / "measured")
    choice = tuned.metadata["temperature_choice"]
    val = evaluation_photos(photo_dir, "validation", 0.5)
    assert choice["photos"] == len(val) > 0
    scores = [TemperatureScore(**s) for s in choice["scores"]]
    assert [s.temperature for s in scores] == list(CANDIDATES)
    assert tuned.temperature == pick(scores)
    assert f"temperature {tuned.temperature:g}, chosen on {len(val)} validation photos" in log

    train(tmp_path / "kept", "--no-measure-temperature", "--quiet")
    kept = load_model(tmp_path / "kept")
    assert "temperature_choice" not in kept.metadata
    assert kept.temperature == load_model("default").temperature  # the init model's, inherited
    # the rewrite changed the temperature and nothing else: the same weights (same seed, CPU) and metadata
    a, b = tuned.net.state_dict(), kept.net.state_dict()
    assert a.keys() == b.keys() and all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)
    assert np.array_equal(tuned.quantizer.prior, kept.quantizer.prior)
    strip = ("temperature", "temperature_choice")
    assert {k: v for k, v in tuned.metadata.items() if k not in strip} == {
        k: v for k, v in kept.metadata.items() if k not in strip
    }
    # and it colorizes at its new temperature
    img = colorize(Image.open(val[0]).convert("L"), model=tuned)
    assert img.size == Image.open(val[0]).size

    # a finished run resumed with nothing to do is not measured again (the file stays as it is)
    before = (tmp_path / "measured" / "model.safetensors").stat().st_mtime_ns
    log = train(tmp_path / "measured", "--resume")
    assert (tmp_path / "measured" / "model.safetensors").stat().st_mtime_ns == before
    assert "chosen on" not in log


def test_a_run_that_trained_on_its_only_photo_keeps_its_temperature(tmp_path):
    """A folder of one photo that the split holds out: the trainer trains on it, so it is no test of anything."""
    from conftest import learnable_photo

    from colorunet.core.splits import is_validation

    d = tmp_path / "one"
    d.mkdir()
    name = next(f"p{i}" for i in range(1000) if is_validation(f"p{i}", 0.5))
    Image.fromarray(learnable_photo(np.random.default_rng(1))).save(d / f"{name}.png")
    out = tmp_path / "run"
    args = [sys.executable, "-m", "colorunet", "train", d, "--out", out, "--steps", "1", "--batch-size", "1", "--crop", "32",
            "--load-size", "64", "--val-fraction", "0.5"]
    r = subprocess.run(list(map(str, args)), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "no validation photos to choose the temperature on; the model keeps 0.38" in r.stderr
    assert "temperature_choice" not in load_model(out).metadata


def test_a_large_validation_set_is_subsampled_evenly(photo_dir, monkeypatch):
    """At most max_photos are scored, spread over the whole list (its first and last included)."""
    import colorunet.evaluation.temperature as temperature

    opened = []
    real = temperature.open_image

    def spy(path):
        opened.append(path)
        return real(path)

    monkeypatch.setattr(temperature, "open_image", spy)
    photos = evaluation_photos(photo_dir)
    many = [photos[i % len(photos)] for i in range(41)]
    choice = choose_temperature(many, "default", candidates=(0.7,), max_photos=5)
    assert choice.photos == 5
    assert opened == [many[i] for i in (0, 10, 20, 30, 40)]
