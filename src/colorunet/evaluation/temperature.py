"""A model's annealed-mean temperature, chosen on validation photos by one stated rule.

The temperature T trades vividness for consistency (Zhang et al. 2016, §2.3):
lower T is more vivid, higher T safer. Which T is best depends on the model
(a briefly trained one often does better nearer 1; docs/results.md), so every
trained model measures its own rather than taking Zhang et al.'s 0.38, and a
fine-tune measures again rather than keeping its init model's.

The rule: among ``CANDIDATES``, the highest rebalanced AuC (over the pixels of
all the photos, as ``colorunet evaluate``) whose outputs keep 80–110% of the
originals' mean colourfulness: a T that wins on AuC by greying the photos
out does not count. If no candidate keeps colourfulness in that band, the one
nearest to it. The network runs once per photo; each temperature only decodes
again.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..core.color import is_grayscale, rgb_to_lab
from ..core.images import ImageError, open_image, to_float_rgb, to_uint8
from ..inference.pipeline import DEFAULT_WORKING_SIZE, Backend, get_model, predict, render
from .metrics import AccuracyCurve, colorfulness

#: Temperatures a model is measured at (those of docs/results.md and docs/semantic.md).
CANDIDATES = (0.38, 0.5, 0.7, 1.0)
#: At most this many photos are scored (evenly spaced through the list given): enough to
#: tell temperatures apart, and a run on a large folder does not spend hours here.
MAX_PHOTOS = 300
#: Mean colourfulness of the outputs, as a share of the originals', that a chosen temperature keeps.
COLORFULNESS_BAND = (0.8, 1.1)
RULE = ("highest rebalanced AuC on the validation photos among the temperatures whose outputs keep 80-110% of the "
        "originals' colourfulness (else the one nearest that band)")


@dataclass(frozen=True)
class TemperatureScore:
    temperature: float
    auc_rebalanced: float
    colorfulness_ratio: float  # mean colourfulness of the outputs / the originals'


@dataclass(frozen=True)
class TemperatureChoice:
    temperature: float
    scores: tuple[TemperatureScore, ...]
    photos: int

    def to_metadata(self) -> dict:
        """What a model file records of how its temperature was chosen."""
        return {"rule": RULE, "photos": self.photos, "scores": [asdict(s) for s in self.scores]}


def pick(scores: list[TemperatureScore], band: tuple[float, float] = COLORFULNESS_BAND) -> float:
    """The temperature the rule picks from measured scores (pure: tested with hand-made numbers)."""
    if not scores:
        raise ValueError("no temperatures were measured")
    lo, hi = band

    def distance(s: TemperatureScore) -> float:
        return max(lo - s.colorfulness_ratio, 0.0, s.colorfulness_ratio - hi)

    inside = [s for s in scores if distance(s) == 0.0]
    if inside:
        return max(inside, key=lambda s: (s.auc_rebalanced, -s.temperature)).temperature
    return min(scores, key=lambda s: (distance(s), -s.auc_rebalanced)).temperature


def choose_temperature(
    photos: list[Path],
    model="default",
    candidates: tuple[float, ...] = CANDIDATES,
    eval_size: int | None = None,
    working_size: int = DEFAULT_WORKING_SIZE,
    progress: bool = False,
    max_photos: int = MAX_PHOTOS,
) -> TemperatureChoice | None:
    """Measure ``model`` at each candidate temperature on ``photos`` (colour originals) and pick one.

    Photos are scaled to ``eval_size`` on their short side as ``colorunet evaluate``
    does; of more than ``max_photos``, that many evenly spaced ones are used. Returns
    None when no photo could be scored (none given, all grayscale or unreadable).
    """
    from .evaluate import DEFAULT_EVAL_SIZE, scale_to_eval_size  # the same scaling as evaluate

    eval_size = DEFAULT_EVAL_SIZE if eval_size is None else eval_size

    if len(photos) > max_photos:
        photos = [photos[i] for i in np.linspace(0, len(photos) - 1, max_photos).round().astype(int)]
    m: Backend = get_model(model)
    if m.head != "classification":
        raise ValueError(f"{getattr(m, 'name', model)}: a regression model has no temperature to choose")
    curves = {t: AccuracyCurve() for t in candidates}
    colour = {t: [] for t in candidates}
    truth_colour: list[float] = []
    for i, path in enumerate(photos):
        try:
            true_rgb, _ = to_float_rgb(open_image(path))
        except ImageError as e:
            if progress:
                print(f"colorunet: skipped {e}", file=sys.stderr)
            continue
        if is_grayscale(true_rgb):
            continue
        true = np.asarray(scale_to_eval_size(Image.fromarray(to_uint8(true_rgb)), eval_size).convert("RGB"), dtype=np.uint8)
        true_f = true.astype(np.float64) / 255
        true_ab = rgb_to_lab(true_f)[..., 1:]
        truth_colour.append(colorfulness(true_f))
        pred = predict(Image.fromarray(true), m, working_size)
        for t in candidates:
            out = np.asarray(render(pred, t).image.convert("RGB"), dtype=np.float64) / 255
            curves[t].add_ab(rgb_to_lab(out)[..., 1:], true_ab)
            colour[t].append(colorfulness(out))
        if progress:
            print(f"\rcolorunet: choosing the temperature: {i + 1}/{len(photos)} photos", end="", file=sys.stderr)
    if progress:
        print(file=sys.stderr)
    if not truth_colour:
        return None
    truth = max(float(np.mean(truth_colour)), 1e-9)
    scores = tuple(
        TemperatureScore(float(t), float(curves[t].auc(rebalanced=True)), float(np.mean(colour[t])) / truth) for t in candidates
    )
    return TemperatureChoice(pick(list(scores)), scores, len(truth_colour))
