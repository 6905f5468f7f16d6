"""Training checkpoints: written atomically, read without running code.

A checkpoint is a dict of tensors and plain values saved with ``torch.save`` to a
temporary file, fsynced and renamed, so a crash at any moment leaves either the
previous checkpoint or the new one, never a torn file. Its SHA-256 is written
beside it (``step_N.pt.sha256``, also atomically, after the checkpoint): a
checkpoint without a matching checksum (damaged on disk, or cut off before its
checksum was written) is skipped and the one before it is used. It is read back
with ``weights_only=True``: a checkpoint from elsewhere cannot execute code.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from ..core.atomic import atomic_path, write_text_atomic
from ..core.checksum import sha256_of
from ..core.errors import ColorunetError

CHECKPOINT_DIR = "checkpoints"
_NAME = re.compile(r"^step_(\d{9})\.pt$")


class CheckpointError(ColorunetError):
    pass


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / f"step_{step:09d}.pt"


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, path) of every checkpoint in the run, oldest first."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return sorted(found)


def save_checkpoint(run_dir: Path, step: int, state: dict[str, Any], keep: int = 2) -> Path:
    """Write ``state`` as the checkpoint of ``step``; keep the newest ``keep`` checkpoints."""
    path = checkpoint_path(run_dir, step)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    write_text_atomic(_checksum_path(path), sha256_of(path) + "\n")
    for _, old in list_checkpoints(run_dir)[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)
        _checksum_path(old).unlink(missing_ok=True)
    return path


def _checksum_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def load_latest_checkpoint(run_dir: Path, log=None) -> tuple[dict[str, Any], Path] | None:
    """The newest readable checkpoint of the run, or None if there is none.

    A checkpoint whose checksum is missing or wrong, or that fails to load, is
    skipped with a warning and the one before it is used.
    """
    import warnings

    log = log or (lambda msg: warnings.warn(msg, stacklevel=3))
    for _, path in reversed(list_checkpoints(run_dir)):
        checksum = _checksum_path(path)
        expected = checksum.read_text().strip() if checksum.exists() else None
        if expected != sha256_of(path):
            why = "no checksum (cut off while being written?)" if expected is None else "checksum mismatch (damaged)"
            log(f"colorunet: {path}: {why}; trying an older checkpoint")
            continue
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # any failure to unpickle means the file is unusable
            log(f"colorunet: {path}: unreadable checkpoint ({type(e).__name__}); trying an older one")
            continue
        missing = [k for k in CHECKPOINT_KEYS if not isinstance(state, dict) or k not in state]
        if missing:
            log(f"colorunet: {path}: not a colorunet checkpoint (no {missing[0]!r}); trying an older one")
            continue
        return state, path
    return None


#: What a checkpoint written by ``Trainer`` holds at least (a file from elsewhere may
#: have a valid checksum and still be a plain dict of something else).
CHECKPOINT_KEYS = ("step", "net", "optimizer", "torch_rng", "model_config", "train_config", "quantizer")
