"""The train/validation split: a fixed rule on each photo's relative path, shared by training and evaluation.

Evaluation on a training folder measures the held-out side of the same split the
trainer made, so this rule lives below both.
"""

from __future__ import annotations

import hashlib
from pathlib import Path, PurePosixPath


def split_paths(paths: list[Path], root: Path, val_fraction: float) -> tuple[list[Path], list[Path]]:
    """Deterministic train/validation split by a hash of each photo's relative path.

    A photo stays on its side of the split when others are added or removed, so a
    validation photo never leaks into training when the folder grows. The
    extension is left out of the hash: a copy re-encoded as JPEG (a packed copy
    of the folder, say) splits the same way.
    """
    return split_by_name(paths, [p.relative_to(root).as_posix() for p in paths], val_fraction)


def split_by_name(items: list, names: list[str], val_fraction: float) -> tuple[list, list]:
    """``items`` split by ``is_validation`` of their relative names (folders and tar shards alike).

    The rule is the hash alone, with no fallback for small sets: a rule such as
    "take the last photo when none hashes to validation" would move that photo
    into training as soon as another photo is added. A folder too small for any
    photo to hash to validation simply has no validation photos.
    """
    flags = [is_validation(n, val_fraction) for n in names]
    train = [x for x, v in zip(items, flags) if not v]
    val = [x for x, v in zip(items, flags) if v]
    return train, val


def is_validation(relative_name: str, val_fraction: float) -> bool:
    """Whether the photo with this relative path (posix, extension ignored) is held out.

    The same rule serves folders and tar shards (which record each photo's path
    relative to the folder they were made from), so both split a corpus alike.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"validation fraction must be in [0, 1), got {val_fraction}")
    stem = PurePosixPath(relative_name).with_suffix("").as_posix()
    h = hashlib.sha256(stem.encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64 < val_fraction
