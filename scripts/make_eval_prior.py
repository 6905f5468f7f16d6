"""Make the evaluation prior that rebalanced AuC weights pixels by (``assets/eval_ab_prior.npy``).

    colorunet data open-photos pool/
    python scripts/make_eval_prior.py pool/train src/colorunet/assets/eval_ab_prior.npy

Every photo of the folder is read at a short side of 256 (as ``evaluate``
scores), its pixels' Lab ab are counted on Zhang et al.'s grid (cells of 10
centred on multiples of 10), and the total is smoothed with a Gaussian of
σ = 5 ab units and normalised (``metrics.ab_prior``). The shipped file was made
from the open pool's 1,235 training photos: the evaluation photos never enter it.
"""

import argparse
from pathlib import Path

import numpy as np

from colorunet.core.color import rgb_to_lab
from colorunet.core.color import is_grayscale
from colorunet.training.data import load_photo
from colorunet.core.images import ImageError, find_images
from colorunet.evaluation.metrics import AB_CELLS, PRIOR_FLOOR, ab_bins, ab_prior


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("photos", type=Path, help="folder of colour photos (the training photos)")
    p.add_argument("out", type=Path, help="the .npy file to write")
    args = p.parse_args()
    counts = np.zeros(AB_CELLS)
    used = 0
    for path in find_images(args.photos):
        try:
            a = load_photo(path, 256)
        except ImageError as e:
            print(f"skipped: {e}")
            continue
        if is_grayscale(a):
            continue
        counts += np.bincount(ab_bins(rgb_to_lab(a / 255.0)[..., 1:]).ravel(), minlength=AB_CELLS)
        used += 1
    prior = ab_prior(counts)
    np.save(args.out, prior)
    print(f"{used} photos, {int(counts.sum())} pixels, {int((counts > 0).sum())} cells seen; "
          f"prior max {prior.max():.4f}, cells above the floor: {int((prior >= PRIOR_FLOOR).sum())}")


if __name__ == "__main__":
    main()
