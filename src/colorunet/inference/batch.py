"""Colorize many photos: where each result goes, and a run that survives bad files.

Output paths follow the inputs: ``-o DIR`` keeps each photo's path relative to
the folder it came from; the format follows the output extension, or
``--format``. A bad file is reported and skipped; the others are still done.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import ColorunetError
from ..core.images import FORMATS, IMAGE_EXTENSIONS, find_images, output_format, save_image

#: Suffix of a result written beside its input when no output is given.
DEFAULT_SUFFIX = "_color"


@dataclass(frozen=True)
class Job:
    src: Path
    dst: Path


@dataclass
class BatchReport:
    done: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def _with_format(path: Path, fmt: str | None) -> Path:
    if fmt:
        return path.with_suffix("." + fmt.lower().lstrip("."))
    if path.suffix.lower() not in FORMATS:
        return path.with_suffix(".png")  # e.g. a GIF: 256 colours cannot hold a colorized photo
    return path


def _is_dir_target(output: Path, inputs: list[Path]) -> bool:
    if output.is_dir() or len(inputs) > 1 or any(p.is_dir() for p in inputs):
        return True
    suffix = output.suffix.lower()
    if suffix not in FORMATS and suffix in _image_extensions():
        # "-o out.gif" names a file in a format colorunet does not write, not a folder called out.gif
        output_format(output)  # raises ImageError, listing the formats it writes
    return suffix not in FORMATS  # "-o results" names a folder


def _image_extensions() -> set[str]:
    from PIL import Image

    return set(Image.registered_extensions()) | set(IMAGE_EXTENSIONS)


def plan_jobs(
    inputs: list[Path], output: Path | None, fmt: str | None = None, confidence: bool = False
) -> tuple[list[Job], list[tuple[Path, str]]]:
    """Pair every input photo with its output path.

    Every file a job will write (its result and, with ``confidence``, its two
    maps) is checked against the inputs and against every other job's files.

    Returns:
        jobs, and (path, reason) for inputs that cannot be planned (missing, clashing).
    """
    if fmt is not None:
        output_format(Path("x"), fmt)  # validates the name
    jobs: list[Job] = []
    problems: list[tuple[Path, str]] = []
    to_dir = output is not None and _is_dir_target(output, inputs)
    several_dirs = sum(p.is_dir() for p in inputs) > 1
    for src in inputs:
        if src.is_dir():
            photos = find_images(src)
            if not photos:
                problems.append((src, f"{src}: no photos found in this folder"))
            if output is None:
                base = src.parent / f"{src.name}{DEFAULT_SUFFIX}"
            else:
                base = output / src.name if several_dirs else output
            jobs += [Job(p, _with_format(base / p.relative_to(src), fmt)) for p in photos]
        elif not src.exists():
            problems.append((src, f"{src}: no such file or folder"))
        elif output is None:
            jobs.append(Job(src, _with_format(src.with_name(src.stem + DEFAULT_SUFFIX + src.suffix), fmt)))
        elif to_dir:
            jobs.append(Job(src, _with_format(output / src.name, fmt)))
        else:
            jobs.append(Job(src, _with_format(output, fmt)))
    # Never write over an input, and never two results to one path.
    sources = {j.src.resolve() for j in jobs}
    seen: set[Path] = set()
    planned: list[Job] = []
    for j in jobs:
        written = output_paths(j.dst, confidence)
        resolved = [p.resolve() for p in written]
        clash = next((p for p, r in zip(written, resolved) if r in sources), None)
        shared = next((p for p, r in zip(written, resolved) if r in seen), None)
        if clash is not None:
            problems.append((j.src, f"{j.src}: output {clash} would overwrite an input; choose another output"))
        elif shared is not None:
            problems.append((j.src, f"{j.src}: output {shared} is also an output of another photo"))
        else:
            seen.update(resolved)
            planned.append(j)
    return planned, problems


def output_paths(dst: Path, confidence: bool = False) -> list[Path]:
    """Every file a job writes: its result, and with ``confidence`` its two maps."""
    return [dst, *confidence_paths(dst)] if confidence else [dst]


def confidence_paths(dst: Path) -> tuple[Path, Path]:
    """Where ``--confidence`` writes the two maps of a result."""
    return dst.with_name(f"{dst.stem}_confidence.png"), dst.with_name(f"{dst.stem}_confidence_ratio.png")


#: Photos decoded ahead of the network, and results waiting to be written: enough
#: to keep both cores busy, few enough that memory stays flat for any folder size.
PREFETCH = 2
PENDING_WRITES = 2


def run_jobs(
    jobs: list[Job],
    colorize_one,
    fmt: str | None = None,
    overwrite: bool = False,
    confidence: bool = False,
    progress: bool = True,
) -> BatchReport:
    """Colorize each job's photo with ``colorize_one(image) -> Colorization`` and save it.

    A streaming pipeline: decoding the next photos and encoding the last results
    run in background threads (Pillow releases the GIL while it works) while the
    network runs on the current one; both queues are bounded (PREFETCH,
    PENDING_WRITES). Errors are per photo: the message is printed and the batch
    goes on.
    """
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    from ..core.images import open_image
    from .working import confidence_image

    report = BatchReport()
    todo = []
    for job in jobs:
        existing = [p for p in output_paths(job.dst, confidence) if p.exists()]
        if existing and not overwrite:
            report.skipped.append((job.src, f"{existing[0]}: exists, kept (use --overwrite to replace it)"))
        else:
            todo.append(job)

    def fail(job: Job, e: Exception) -> None:
        msg = str(e) if isinstance(e, ColorunetError) else f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'failed'}"
        if str(job.src) not in msg and str(job.dst) not in msg:
            msg = f"{job.src}: {msg}"  # every message names its photo
        report.failed.append((job.src, msg))
        tqdm.write(f"colorunet: error: {msg}", file=sys.stderr)

    def write(job: Job, result) -> None:
        save_image(result.image, job.dst, fmt)
        if confidence and result.confidence_top is not None:
            top_path, ratio_path = confidence_paths(job.dst)
            save_image(confidence_image(result.confidence_top), top_path)
            save_image(confidence_image(result.confidence_margin), ratio_path)

    errors = (ColorunetError, MemoryError, RuntimeError, ValueError, OSError)
    bar = tqdm(
        total=len(todo),
        desc="colorizing",
        unit="photo",
        disable=not progress or len(todo) < 2,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="colorunet-io") as pool:
        loads = deque()
        writes: deque = deque()

        def finish_write() -> None:
            job, future = writes.popleft()
            try:
                future.result()
                report.done.append(job.dst)
            except errors as e:
                fail(job, e)
            bar.update(1)

        queue = iter(todo)
        for job in queue:
            loads.append((job, pool.submit(open_image, job.src)))
            if len(loads) > PREFETCH:
                break
        while loads:
            job, future = loads.popleft()
            nxt = next(queue, None)
            if nxt is not None:
                loads.append((nxt, pool.submit(open_image, nxt.src)))
            try:
                result = colorize_one(future.result())
            except errors as e:
                fail(job, e)
                bar.update(1)
                continue
            for note in result.notes:
                tqdm.write(f"colorunet: {job.src}: {note}", file=sys.stderr)
            writes.append((job, pool.submit(write, job, result)))
            while len(writes) > PENDING_WRITES:
                finish_write()
        while writes:
            finish_write()
    bar.close()
    return report
