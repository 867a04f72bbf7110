"""Load, resize and encode images on all cores, results in list order.

The list of a database is cut into chunks; each chunk is loaded, resized and encoded by a worker
process (or in this process with one worker) and comes back with the partial int64 sum of its
resized images for the mean. The main process only writes LMDB, so every core encodes.

Copies are avoided on the way: a grey image in a colour dataset stays HxW from the resize to the
PNG (png.py writes it as a grey-ramp palette image, the same pixels) and into the mean (summed
once as grey, spread over the channels once per chunk); the chunk's sum is kept in uint32 (exact
below 16 million images of 255) and only turned into int64 at the end of the chunk.

Chunks are taken back strictly in submission order, so the records, and therefore the keys, are
the same for any number of workers; the noise of fill/half_crop is drawn from a generator seeded
by (seed, database, position), not from the worker.

DIGITS used up to 10 threads and let thread timing decide the order; processes are used here
because PIL's resize and zlib hold the GIL for part of the work.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import Iterator, Sequence

import numpy as np

from prototxt.processes import die_with_parent

from .datum import encode_datum
from .errors import LoadImageError
from .images import load_image, resize_image
from .plan import Entry, ImageSettings

NOISY_MODES = ("fill", "half_crop")


@dataclass(frozen=True)
class EncodeJob:
    """What every chunk of one database shares."""
    image: ImageSettings
    seed: int
    db_id: int
    want_sum: bool


@dataclass
class Record:
    """One encoded image (`value` = serialized Datum) or, when `error` is set, a skipped one."""
    name: str
    label: int
    value: bytes = b""
    error: str = ""


@dataclass
class ChunkResult:
    records: list[Record]
    total: np.ndarray | None = None     # int64 sum of the resized images that loaded
    count: int = 0


Chunk = Sequence[tuple[int, Entry]]     # (position in the database's list, entry)


def encode_one(entry: Entry, position: int, job: EncodeJob) -> tuple[np.ndarray, bytes]:
    """(resized uint8 array, serialized Datum) of one entry; raises LoadImageError.

    The array is HxWx3 RGB or HxW; HxW in a 3-channel dataset is a grey image standing for
    three equal channels.
    """
    settings = job.image
    image = load_image(entry.source, settings.max_pixels)
    rng = (np.random.default_rng([job.seed, job.db_id, position])
           if settings.resize_mode in NOISY_MODES else None)
    array = resize_image(image, settings.height, settings.width, settings.channels,
                         settings.resize_mode, rng, keep_gray=True)
    gray_as_rgb = settings.channels == 3 and array.ndim == 2
    return array, encode_datum(array, entry.label, settings.encoding, settings.png_level, gray_as_rgb)


class _Sum:
    """uint32 sums of HxW and HxWx3 arrays; `total()` is their int64 sum in the dataset's layout
    (a grey sum added to every channel of a colour one)."""

    def __init__(self) -> None:
        self.sums: dict[int, np.ndarray] = {}
        self.count = 0

    def add(self, array: np.ndarray) -> None:
        total = self.sums.get(array.ndim)
        if total is None:
            self.sums[array.ndim] = total = np.zeros(array.shape, np.uint32)
        np.add(total, array, out=total)
        self.count += 1

    def total(self, channels: int) -> np.ndarray | None:
        gray, colour = self.sums.get(2), self.sums.get(3)
        if gray is None and colour is None:
            return None
        if channels == 1:
            return gray.astype(np.int64)
        out = colour.astype(np.int64) if colour is not None else np.zeros((*gray.shape, 3), np.int64)
        if gray is not None:
            out += gray[:, :, np.newaxis]
        return out


def encode_chunk(job: EncodeJob, chunk: Chunk) -> ChunkResult:
    """Encode a chunk in order; images that fail to load become error records."""
    result = ChunkResult(records=[])
    sums = _Sum()
    for position, entry in chunk:
        try:
            array, value = encode_one(entry, position, job)
        except LoadImageError as exc:
            result.records.append(Record(entry.name, entry.label, error=exc.message))
            continue
        except (ValueError, OSError, MemoryError) as exc:   # e.g. a 1x500 strip resized to 0 rows
            result.records.append(Record(entry.name, entry.label,
                                         error=f"cannot resize or encode it ({type(exc).__name__}: {exc})"))
            continue
        result.records.append(Record(entry.name, entry.label, value))
        if job.want_sum:
            sums.add(array)
    if sums.count:
        result.total, result.count = sums.total(job.image.channels), sums.count
    return result


def _ignore_sigint(parent: int | None) -> None:
    """Workers leave Ctrl-C to the main process, which stops the pool and cleans up, and die
    with it when it is killed."""
    die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def start_method() -> str:
    """`fork` while this process has a single thread: quick, and a calling script needs no
    `if __name__ == "__main__"` guard; otherwise `forkserver` (or `spawn`), since forking a
    process with threads (a progress monitor, a framework's pools) can deadlock the child."""
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        return "fork"
    return "forkserver" if "forkserver" in methods else "spawn"


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def chunk_size(count: int, workers: int) -> int:
    """Small enough to spread the work (8 chunks per worker), large enough to amortise IPC."""
    return max(16, min(256, -(-count // (workers * 8))))


class Encoder:
    """A pool of `workers` processes (none when 1) for the databases of one build."""

    def __init__(self, workers: int | None = None):
        self.workers = workers or default_workers()
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> "Encoder":
        if self.workers > 1:
            method = start_method()
            parent = None if method == "forkserver" else os.getpid()  # forkserver: its children
            self._pool = ProcessPoolExecutor(self.workers, multiprocessing.get_context(method),
                                             initializer=_ignore_sigint, initargs=(parent,))
            self._pool.submit(int).result()      # start the workers now, before any progress thread
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def run(self, job: EncodeJob, entries: Sequence[Entry]) -> Iterator[ChunkResult]:
        """ChunkResults in list order; at most 3 chunks per worker are in flight."""
        size = chunk_size(len(entries), self.workers)
        indexed = list(enumerate(entries))
        chunks = (indexed[start:start + size] for start in range(0, len(indexed), size))
        if self._pool is None:
            for chunk in chunks:
                yield encode_chunk(job, chunk)
            return
        pending: deque[Future[ChunkResult]] = deque()
        try:
            for chunk in chunks:
                pending.append(self._pool.submit(encode_chunk, job, chunk))
                if len(pending) >= 3 * self.workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
