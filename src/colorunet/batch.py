"""Colorize many photos: where each result goes, and a run that survives bad files.

Output paths follow the inputs: ``-o DIR`` keeps each photo's path relative to
the folder it came from; the format follows the output extension, or
``--format``. A bad file is reported and skipped; the others are still done.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ColorunetError
from .images import FORMATS, ImageError, find_images, output_format, save_image

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
    return output.suffix.lower() not in FORMATS  # "-o results" names a folder


def plan_jobs(inputs: list[Path], output: Path | None, fmt: str | None = None) -> tuple[list[Job], list[tuple[Path, str]]]:
    """Pair every input photo with its output path.

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
        dst = j.dst.resolve()
        if dst in sources:
            problems.append((j.src, f"{j.src}: output {j.dst} would overwrite an input; choose another output"))
        elif dst in seen:
            problems.append((j.src, f"{j.src}: output {j.dst} is also the output of another photo"))
        else:
            seen.add(dst)
            planned.append(j)
    return planned, problems


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

    from .images import open_image
    from .working import confidence_image

    report = BatchReport()
    todo = []
    for job in jobs:
        if job.dst.exists() and not overwrite:
            report.skipped.append((job.src, f"{job.dst}: exists, kept (use --overwrite to replace it)"))
        else:
            todo.append(job)

    def fail(job: Job, e: Exception) -> None:
        msg = str(e) if isinstance(e, ImageError) else f"{job.src}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'failed'}"
        report.failed.append((job.src, msg))
        tqdm.write(f"colorunet: error: {msg}", file=sys.stderr)

    def write(job: Job, result) -> None:
        save_image(result.image, job.dst, fmt)
        if confidence and result.confidence_top is not None:
            top_path, ratio_path = confidence_paths(job.dst)
            save_image(confidence_image(result.confidence_top), top_path)
            save_image(confidence_image(result.confidence_margin), ratio_path)

    errors = (ColorunetError, MemoryError, RuntimeError, ValueError, OSError)
    bar = tqdm(total=len(todo), desc="colorizing", unit="photo", disable=not progress or len(todo) < 2, file=sys.stderr, dynamic_ncols=True)
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
