"""Write scikit-image's bundled colour photos to a folder, for the placeholder model.

    python scripts/skimage_photos.py photos/skimage

These five photos ship inside the scikit-image wheel (no download): astronaut
(NASA, public domain), chelsea, coffee (CC0), rocket (SpaceX, public domain) and
motorcycle_left (Middlebury stereo 2014). They are far too few for a general
model; they only make a working placeholder until a model trained on the open
photo pool replaces it.
"""

import sys
from pathlib import Path

from PIL import Image
from skimage import data

PHOTOS = {
    "astronaut": data.astronaut,
    "chelsea": data.chelsea,
    "coffee": data.coffee,
    "rocket": data.rocket,
    "motorcycle_left": lambda: data.stereo_motorcycle()[0],
}

if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python scripts/skimage_photos.py OUT_DIR")
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for name, load in PHOTOS.items():
        Image.fromarray(load()).save(out / f"{name}.png")
        print(out / f"{name}.png")
