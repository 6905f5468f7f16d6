"""Training photos in tar shards: millions of photos without a directory walk.

``colorunet data shard SRC OUT`` packs a folder of photos into WebDataset-style
tar files (``shard-000000.tar`` …; each photo is a member ``KEY.jpg`` — its
original bytes, not re-encoded — next to ``KEY.json`` with its path in SRC) and
writes ``shards.json``: for every shard, the name, byte offset and size of each
photo inside it. With that index, training reads any photo with one seek and
one read, from local disk or any fsspec URL (``s3://``, ``gs://``, ``https://``
…), and the data stream stays a pure function of the sample number — resuming,
or changing the number of processes, continues it exactly (see
``data.CropBatches``). Shards written by other tools can be indexed by
``index_tars``.

The order of a pass is shard-major, as in WebDataset: the shards are shuffled
(seeded by the pass), then the photos within each shard. Consecutive samples
thus read the same file — sequential enough for object stores — while the
shards themselves were filled in a seeded random order of the whole folder,
so any shard is a fair sample of it.
"""

from __future__ import annotations

import io
import json
import os
import posixpath
import sys
import tarfile
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..core.atomic import atomic_path, write_text_atomic
from ..core.color import is_grayscale
from ..core.splits import split_by_name
from .data import load_photo
from ..core.errors import ColorunetError
from ..core.images import ImageError, find_images

INDEX_FILENAME = "shards.json"
INDEX_FORMAT = "colorunet-shards"
#: A photo that fails to decode (or is grey) is replaced by the next one in its shard; this many tries at most.
MAX_SUBSTITUTES = 16


class ShardError(ColorunetError):
    pass


def is_url(spec: str) -> bool:
    return "://" in str(spec)


def _open_binary(url: str):
    """A readable, seekable binary file: a local path, or any URL fsspec knows."""
    if is_url(url):
        try:
            import fsspec
        except ImportError:
            raise ShardError(f"{url}: reading URLs needs fsspec (pip install 'colorunet[scale]')") from None
        return fsspec.open(url, "rb").open()
    return open(url, "rb")


def is_shard_source(spec: str | os.PathLike) -> bool:
    """Whether ``colorunet train`` should read ``spec`` as shards rather than a folder of photos."""
    s = str(spec)
    return is_url(s) or s.endswith(".json") or (Path(s) / INDEX_FILENAME).is_file()


# --- writing -------------------------------------------------------------------------------------------


def write_shards(
    src: Path, out: Path, shard_size: int = 10_000, seed: int = 0, short_side: int | None = None, progress: bool = True
) -> dict:
    """Pack the photos of ``src`` (recursive) into tar shards in ``out``; returns the index.

    The photos are shuffled with ``seed`` before being cut into shards, so every
    shard is a random sample of the folder. They are stored as they are, or,
    with ``short_side``, shrunk (Lanczos) to that short side and re-encoded as
    JPEG (quality 95) — decoding a 256-px JPEG is several times faster than a
    full-size one, and at scale decoding is what feeds the GPU. Files Pillow
    cannot read are skipped and listed. Shards and the index are written
    atomically, with fixed tar metadata: the same folder and seed give
    byte-identical shards.
    """
    from PIL import Image
    from tqdm import tqdm

    src, out = Path(src), Path(out)
    if shard_size < 1:
        raise ValueError(f"shard size must be ≥ 1, got {shard_size}")
    if not src.is_dir():
        raise ShardError(f"{src}: not a folder of photos")
    paths = find_images(src)
    if not paths:
        raise ShardError(f"{src}: no photos found")
    if out.resolve() == src.resolve() or src.resolve() in out.resolve().parents:
        raise ShardError(f"{out}: the shards must go outside the photo folder {src}")
    order = np.random.default_rng((seed, 0x5DA)).permutation(len(paths))
    out.mkdir(parents=True, exist_ok=True)
    shards, skipped, n = [], [], 0
    bar = tqdm(total=len(paths), desc="sharding", unit="photo", disable=not progress, file=sys.stderr)
    for start in range(0, len(paths), shard_size):
        name = f"shard-{len(shards):06d}.tar"
        names, members = [], []
        for i in order[start : start + shard_size]:
            p = paths[int(i)]
            rel = p.relative_to(src).as_posix()
            data, ext = p.read_bytes(), p.suffix.lower()
            try:
                if short_side:
                    data, ext = _shrunk(data, rel, short_side, ext)
                else:
                    with Image.open(io.BytesIO(data)) as img:
                        img.size  # noqa: B018 - identify only; decoding is the trainer's job
            except Exception:
                skipped.append(rel)
                bar.update(1)
                continue
            key = f"{n:09d}"
            n += 1
            names.append(rel)
            members.append((f"{key}{ext}", data))
            members.append((f"{key}.json", json.dumps({"path": rel}).encode()))
            bar.update(1)
        if not names:
            continue
        with atomic_path(out / name) as tmp:
            with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
                for member, data in members:
                    info = tarfile.TarInfo(member)
                    info.size, info.mtime, info.mode = len(data), 0, 0o644
                    tar.addfile(info, io.BytesIO(data))
        shards.append(_index_one_tar(str(out / name), name, names))
    bar.close()
    index = {"format": INDEX_FORMAT, "version": 1, "photos": n, "shards": shards, "skipped": skipped}
    write_text_atomic(out / INDEX_FILENAME, json.dumps(index))
    return index


def _shrunk(data: bytes, name: str, short_side: int, ext: str) -> tuple[bytes, str]:
    """The photo at ``short_side`` as a JPEG, or unchanged if it is no larger."""
    from PIL import Image

    from ..core.images import open_image

    img = open_image(data, name=name, draft_short_side=short_side)
    w, h = img.size
    if min(w, h) <= short_side and img.mode == "RGB" and ext in (".jpg", ".jpeg"):
        return data, ext
    img = img.convert("RGB")
    if min(w, h) > short_side:
        f = short_side / min(w, h)
        img = img.resize((max(short_side, round(w * f)), max(short_side, round(h * f))), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=95)
    return buf.getvalue(), ".jpg"


def _index_one_tar(path: str, url: str, names: list[str] | None = None) -> dict:
    """Offsets and sizes of the image members of one tar (names: from .json members, or given)."""
    from ..core.images import IMAGE_EXTENSIONS

    offsets, sizes, keys, paths = [], [], [], {}
    with _open_binary(path) as f, tarfile.open(fileobj=f, mode="r:") as tar:
        for m in tar:
            if not m.isfile():
                continue
            stem, ext = posixpath.splitext(m.name)
            if ext.lower() in IMAGE_EXTENSIONS:
                offsets.append(m.offset_data)
                sizes.append(m.size)
                keys.append(m.name)
            elif ext == ".json" and names is None:
                try:
                    paths[stem] = json.loads(tar.extractfile(m).read())["path"]
                except (ValueError, KeyError, TypeError):
                    pass
    if names is None:  # a shard from another tool: name photos by their recorded path, else member name
        names = [paths.get(posixpath.splitext(k)[0], k) for k in keys]
    return {"url": url, "names": names, "offsets": offsets, "sizes": sizes}


def index_tars(tars: list[str], out: Path) -> dict:
    """Write ``shards.json`` for existing WebDataset-style tars (local paths or URLs).

    Local tars are recorded relative to the index's folder (that is what
    readers resolve them against), so the index works wherever it is written
    and moves with the tars.
    """
    here = Path(out).resolve().parent

    def recorded(t: str) -> str:
        return t if is_url(t) else Path(os.path.relpath(Path(t).resolve(), here)).as_posix()

    shards = [_index_one_tar(t, recorded(t)) for t in tars]
    index = {
        "format": INDEX_FORMAT,
        "version": 1,
        "photos": sum(len(s["names"]) for s in shards),
        "shards": shards,
        "skipped": [],
    }
    write_text_atomic(out, json.dumps(index))
    return index


# --- reading -------------------------------------------------------------------------------------------


def _index_url(spec: str) -> str:
    s = str(spec)
    if s.endswith(".json"):
        return s
    return s.rstrip("/") + "/" + INDEX_FILENAME


def read_index(spec: str | os.PathLike) -> tuple[dict, str]:
    """The index and the base its shard names are relative to."""
    url = _index_url(str(spec))
    try:
        with _open_binary(url) as f:
            index = json.loads(f.read())
    except (OSError, ValueError) as e:
        raise ShardError(f"{url}: cannot read the shard index ({e})") from None
    if index.get("format") != INDEX_FORMAT or not isinstance(index.get("shards"), list):
        raise ShardError(f"{url}: not a colorunet shard index (made by 'colorunet data shard')")
    return index, posixpath.dirname(url) if is_url(url) else str(Path(url).parent)


def _resolve(base: str, url: str) -> str:
    if is_url(url) or os.path.isabs(url):
        return url
    return posixpath.join(base, url) if is_url(base) else str(Path(base) / url)


@dataclass
class Records:
    """Photos inside shards: shard number, byte offset and size of each, grouped by shard."""

    urls: list[str]
    shard: np.ndarray  # (N,) int32, non-decreasing
    offset: np.ndarray  # (N,) int64
    size: np.ndarray  # (N,) int64
    names: list[str]

    def __len__(self) -> int:
        return len(self.shard)


def split_records(spec: str | os.PathLike, val_fraction: float) -> tuple[Records, Records]:
    """Training and validation photos of a shard set, split by the same rule as a folder."""
    index, base = read_index(spec)
    urls = [_resolve(base, s["url"]) for s in index["shards"]]
    rows = [
        (i, off, size, name)
        for i, s in enumerate(index["shards"])
        for name, off, size in zip(s["names"], s["offsets"], s["sizes"])
    ]
    train, val = split_by_name(rows, [r[3] for r in rows], val_fraction)

    def records(rows) -> Records:
        return Records(
            urls,
            np.array([r[0] for r in rows], dtype=np.int32),
            np.array([r[1] for r in rows], dtype=np.int64),
            np.array([r[2] for r in rows], dtype=np.int64),
            [r[3] for r in rows],
        )

    return records(train), records(val)


class _Files:
    """Open shard files of this process (reopened after a fork: file offsets are shared otherwise).

    A seek and the read after it must not interleave with another thread's
    (``decode_some`` reads from threads): the other thread's seek would make this
    one read the wrong bytes, and a good photo would be taken for a broken one.
    """

    def __init__(self):
        self.pid, self.files, self.lock = os.getpid(), {}, threading.Lock()

    def read(self, url: str, offset: int, size: int) -> bytes:
        if self.pid != os.getpid():  # a new lock too: another thread may have held the old one at the fork
            self.pid, self.files, self.lock = os.getpid(), {}, threading.Lock()
        with self.lock:
            f = self.files.get(url)
            if f is None:
                if len(self.files) >= 8:
                    self.files.pop(next(iter(self.files))).close()
                f = self.files[url] = _open_binary(url)
            f.seek(offset)
            return f.read(size)


class ShardPhotos:
    """The training photos of a shard set as a sequence, decoded on demand (in the loader workers).

    ``photos[i]`` decodes record i at ``load_size`` like a folder photo;
    ``photo_of(k)`` is the record of global sample k (shard-major order, see
    the module notes). A record that fails to decode, or is grey, is replaced by
    the next in its shard, with a message on stderr.
    """

    def __init__(self, records: Records, load_size: int, min_size: int, seed: int):
        if not len(records):
            raise ShardError("the shard set holds no training photos")
        self.records = records
        self.load_size, self.min_size, self.seed = load_size, min_size, seed
        starts = np.searchsorted(records.shard, np.arange(len(records.urls) + 1))
        self.starts = starts  # records of shard j are [starts[j], starts[j+1])
        self.counts = np.diff(starts)
        self.nonempty = np.flatnonzero(self.counts)
        self._files = _Files()

    def __len__(self) -> int:
        return len(self.records)

    def __getstate__(self):  # data-loader workers started by "spawn" open their own files
        return {k: v for k, v in self.__dict__.items() if k != "_files"}

    def __setstate__(self, state):
        self.__dict__.update(state, _files=_Files())

    @lru_cache(maxsize=4)
    def _epoch(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        order = self.nonempty[np.random.default_rng((self.seed, 0x5A, epoch)).permutation(len(self.nonempty))]
        return order, np.cumsum(self.counts[order])

    @lru_cache(maxsize=64)
    def _within(self, epoch: int, shard: int) -> np.ndarray:
        return np.random.default_rng((self.seed, 0x5B, epoch, shard)).permutation(int(self.counts[shard]))

    def photo_of(self, k: int) -> int:
        epoch, j = divmod(k, len(self))
        order, cum = self._epoch(epoch)
        pos = int(np.searchsorted(cum, j, side="right"))
        shard = int(order[pos])
        within = j - (int(cum[pos - 1]) if pos else 0)
        return int(self.starts[shard] + self._within(epoch, shard)[within])

    def decode(self, i: int) -> np.ndarray:
        """Record i at ``load_size`` (raises ImageError for a bad or grey photo)."""
        r = self.records
        url, name = r.urls[int(r.shard[i])], r.names[i]
        data = self._files.read(url, int(r.offset[i]), int(r.size[i]))
        a = load_photo(data, self.load_size, self.min_size, name=f"{url}:{name}")
        if is_grayscale(a):
            raise ImageError(f"{url}:{name}: a grayscale photo")
        return a

    def __getitem__(self, i: int) -> np.ndarray:
        shard = int(self.records.shard[i])
        lo, n = int(self.starts[shard]), int(self.counts[shard])
        for t in range(min(MAX_SUBSTITUTES, n)):
            j = lo + (i - lo + t) % n
            try:
                return self.decode(j)
            except ImageError as e:
                print(f"colorunet: {e}; using the next photo of the shard", file=sys.stderr)
        raise ShardError(f"{self.records.urls[shard]}: {min(MAX_SUBSTITUTES, n)} photos in a row failed to decode")


def decode_some(photos: ShardPhotos, which: list[int], workers: int | None = None):
    """Decode the records ``which`` in parallel threads (Pillow releases the GIL); yields arrays in order."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1)) as pool:
        yield from pool.map(photos.__getitem__, which)
