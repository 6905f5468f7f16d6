"""Atomic file writes: a result appears complete under its final name, or not at all.

The data goes to a temporary file in the same folder (so the rename cannot cross
file systems), is flushed to disk, then renamed over the final name. A crash, a
kill -9 or Ctrl-C at any moment leaves the previous file intact and, at worst, a
hidden ``.NAME.*.part`` file behind.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import ColorunetError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: Bytes of the final name kept in the temporary one: file systems allow 255, and
#: ``.NAME.xxxxxxxx.part`` adds 15, so a 241-byte name failed with "File name too long".
TEMP_NAME_BYTES = 200


class OutputError(ColorunetError):
    """An output that cannot be written (read-only folder, a file where a folder should be...)."""


def _temp_prefix(name: str) -> str:
    kept = name.encode("utf-8", "surrogateescape")[:TEMP_NAME_BYTES].decode("utf-8", "ignore")
    return f".{kept}."


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; on success it becomes ``path``.

    Raises:
        OutputError: the folder cannot be made or written to, or ``path`` cannot be
            replaced; the message names ``path``. (Errors of the caller's own
            writing propagate as they are.)
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=_temp_prefix(path.name), suffix=".part", dir=path.parent)
    except OSError as e:
        raise OutputError(f"{path}: cannot write ({e.strerror or e})") from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        # mkstemp makes the file private (0600); give it the permissions of a normal new file.
        os.chmod(tmp, 0o666 & ~_umask())
        try:
            os.replace(tmp, path)
        except OSError as e:
            raise OutputError(f"{path}: cannot write ({e.strerror or e})") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path
