"""Caffe's Data layer: batches from an LMDB in key order, wrapping around, through the
DataTransformer; prefetched by worker processes.

Batch k of a source holds records (g * B + j) mod N, j < B, with g = k * world + rank: one
process reads the database straight through and wraps at the end like Caffe's DataReader; with
several processes (torchrun) they take global batches in turn, as Caffe's multi-GPU readers did,
so the global batch is B * world. The transformer's random stream (crop offsets, mirror) is
seeded per batch from (seed, phase, g): any batch can be made again, by any worker, which makes
prefetching deterministic and a resumed run read exactly what an uninterrupted one would.
Caffe drew from one Boost stream, so the crops and flips have Caffe's distribution, not its
exact draws.

force_color / force_gray (encoded datums, as in Caffe) convert 1 -> 3 channels by repetition and
3 -> 1 with OpenCV's BGR2GRAY weights.

Damaged records (a value that is not a Datum, an image that does not decode, no image data):
`bad_records="stop"` (the default, `trainer run --bad-records stop`) ends the run with an error
naming the record's position, key and database; "skip" takes the next readable record in key
order instead (wrapping around, so the same batch always gets the same records) and reports each
damaged record once (`Batches(on_skip=...)`). Labels are checked against the classification
layers reading them (`SourceSpec.labels`, trainer.labels) as each batch is made, on the CPU: a
label outside [0, classes) is an error naming the record, the layer and the value. Errors raised
in worker processes arrive whole (DataError pickles its message and file).

What travels: workers decode, draw and cut each crop window in uint8 (`BatchMaker.raw`) straight
into shared memory (trainer.shared_slots) and send back only the draws and labels; the trainer
copies the uint8 batch to its device (asynchronously from page-locked memory on a GPU) and
finishes it there (trainer.batch_transform). `BatchMaker.__call__` is the NumPy reference of the
same batch, equal bit for bit.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from lmdb_builder import BuilderError, DatumDB, read_mean
from prototxt import caffe_pb2
from prototxt.errors import PrototxtError
from prototxt.processes import die_with_parent

from .batch_transform import BatchTransform
from .labels import LabelRule
from .shared_slots import SlotRing, attach
from .transform import DataTransformer

_GRAY = np.array([0.114, 0.587, 0.299], dtype=np.float32)  # B, G, R (OpenCV BGR2GRAY)
BAD_RECORDS = ("stop", "skip")


class DataError(PrototxtError):
    """A batch could not be made: a damaged record, a label out of range, a size mismatch
    (pickles whole, as every PrototxtError, so it reads the same from a worker process)."""


@dataclass(frozen=True)
class SourceSpec:
    """Everything needed to make any batch of one Data layer (picklable, for workers)."""
    layer: str
    path: str
    batch_size: int
    phase: int
    transform: bytes          # serialized TransformationParameter
    mean_file: str | None
    seed: int
    rank: int = 0
    world: int = 1
    bad_records: str = "stop"             # "stop" or "skip" (see the module docstring)
    labels: tuple[LabelRule, ...] = ()    # layers reading the label top (Batches.bound_labels)


def source_spec(layer: caffe_pb2.LayerParameter, phase: int, seed: int, net_file: str,
                rank: int = 0, world: int = 1, bad_records: str = "stop") -> SourceSpec:
    """Check a Data layer's database and mean file, naming the layer and suggesting --dataset."""
    p = layer.data_param
    if p.backend != caffe_pb2.DataParameter.LMDB:
        raise PrototxtError(f"layer '{layer.name}': backend LEVELDB is not supported; rebuild the "
                            f"dataset as LMDB with python -m lmdb_builder", net_file)
    if p.batch_size <= 0:
        raise PrototxtError(f"layer '{layer.name}': data_param.batch_size must be positive", net_file)
    if not (Path(p.source) / "data.mdb").is_file():
        raise PrototxtError(f"layer '{layer.name}': no LMDB at {p.source!r} (its data.mdb is "
                            f"missing); if the job came from another machine, point it at a "
                            f"rebuilt dataset with --dataset DIR", net_file)
    mean_file = None
    if layer.transform_param.HasField("mean_file"):
        mean_file = layer.transform_param.mean_file
        if not Path(mean_file).is_file():
            raise PrototxtError(f"layer '{layer.name}': mean_file {mean_file!r} does not exist; "
                                f"point the job at a rebuilt dataset with --dataset DIR", net_file)
    if p.rand_skip:
        raise PrototxtError(f"layer '{layer.name}': data_param.rand_skip is not supported",
                            net_file)
    if bad_records not in BAD_RECORDS:
        raise ValueError(f"bad_records must be one of {', '.join(BAD_RECORDS)}, not "
                         f"{bad_records!r}")
    return SourceSpec(layer.name, p.source, int(p.batch_size), phase,
                      layer.transform_param.SerializeToString(), mean_file, seed, rank, world,
                      bad_records)


class Skipped(NamedTuple):
    """A damaged record that bad_records="skip" replaced."""
    index: int            # position in key order
    key: str
    reason: str
    replaced_by: int      # the record used instead


class Draws(NamedTuple):
    """What a worker sends back for a batch whose uint8 pixels it wrote into a slot."""
    h_off: np.ndarray     # int64 (B,)
    w_off: np.ndarray     # int64 (B,)
    mirror: np.ndarray    # bool (B,)
    labels: np.ndarray    # int64 (B,)
    skipped: tuple[Skipped, ...] = ()


class BatchMaker:
    """Makes batch k of one source: `raw(k, out)` in uint8 for the device, or `maker(k)` ->
    (float32 B x C x h x w, int64 B labels) in NumPy."""

    def __init__(self, spec: SourceSpec):
        self.spec = spec
        self.db = DatumDB(spec.path)
        self.size = len(self.db)
        if self.size == 0:
            raise PrototxtError(f"layer '{spec.layer}': the database is empty", spec.path)
        param = caffe_pb2.TransformationParameter.FromString(spec.transform)
        self.force_color, self.force_gray = param.force_color, param.force_gray
        mean = read_mean(spec.mean_file) if spec.mean_file else None
        self.transformer = DataTransformer(param, spec.phase, mean,
                                           where=f"layer '{spec.layer}' transform_param")
        self._bad: dict[int, str] = {}  # damaged records met so far: position -> reason

    def _key(self, index: int) -> str:
        return self.db.keys[index].decode(errors="replace")

    def _read(self, index: int) -> tuple[int, np.ndarray, int, Skipped | None]:
        """(position used, image, label, what was skipped) for the record at `index`."""
        for step in range(self.size):
            at = (index + step) % self.size
            reason = self._bad.get(at)
            if reason is None:
                try:
                    image, label = self.db[at]
                except BuilderError as exc:
                    reason = self._bad[at] = exc.message
                else:
                    skipped = None
                    if at != index:
                        skipped = Skipped(index, self._key(index), self._bad[index], at)
                    return at, image, int(label), skipped
            if self.spec.bad_records != "skip":
                raise self._damaged(at, reason)
        raise DataError(f"layer '{self.spec.layer}': none of the {self.size} records can be "
                        f"read (e.g. {self._bad[index]}); rebuild the dataset "
                        "(python -m lmdb_builder)", self.spec.path)

    def _damaged(self, index: int, reason: str) -> DataError:
        return DataError(f"layer '{self.spec.layer}': record {index} (key '{self._key(index)}') "
                         f"cannot be read: {reason}. Rebuild the dataset (python -m lmdb_builder; "
                         "python -m lmdb_builder verify lists every damaged record), or train "
                         "without such records: trainer run --bad-records skip", self.spec.path)

    def _records(self, k: int, skipped: list[Skipped] | None = None
                 ) -> Iterator[tuple[int, np.ndarray, int]]:
        """(position, image after force_*, label) of batch k's records, with the transformer's
        random stream seeded for this batch; damaged records replaced go to `skipped`."""
        s = self.spec
        g = k * s.world + s.rank
        self.transformer.reseed([s.seed & 0xFFFFFFFF, s.phase, g])
        for j in range(s.batch_size):
            index, image, label, skip = self._read((g * s.batch_size + j) % self.size)
            if skip is not None and skipped is not None:
                skipped.append(skip)
            yield index, self._force(image), label

    def check_labels(self, labels: np.ndarray, indices: list[int]) -> None:
        """Every label within what the layers reading it take (spec.labels), else DataError."""
        for rule in self.spec.labels:
            bad = rule.bad(labels)
            if bad.any():
                j = int(np.argmax(bad))
                raise DataError(
                    f"layer '{self.spec.layer}': record {indices[j]} (key "
                    f"'{self._key(indices[j])}') has label {int(labels[j])}, but {rule.describe()}. "
                    "Check the dataset's labels (python -m lmdb_builder verify lists them) or the "
                    "net's number of outputs", self.spec.path)

    def __call__(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Batch k in float32, transformed in NumPy (the reference of `raw` + BatchTransform)."""
        images, labels, indices = [], [], []
        for index, image, label in self._records(k):
            self._check_transform(index, image)
            images.append(self.transformer(image))
            labels.append(label)
            indices.append(index)
        labels = np.asarray(labels, dtype=np.int64)
        self.check_labels(labels, indices)
        return np.stack(images), labels

    def _check_transform(self, index: int, image: np.ndarray) -> None:
        try:
            self.transformer.check(image.shape)
        except PrototxtError as exc:  # the mean names its file; crop and mean_value the data
            where = f"{exc.field}: " if exc.field else ""
            raise DataError(f"{where}{exc.message} (record {index}, key '{self._key(index)}')",
                            exc.path or self.spec.path) from None

    @property
    def batch_shape(self) -> tuple[int, int, int, int]:
        return (self.spec.batch_size, *self.output_shape())

    def raw(self, k: int, out: np.ndarray) -> Draws:
        """Write batch k's crop windows (uint8, flipped where drawn) into `out`
        (`batch_shape`); return the draws and labels."""
        n = self.spec.batch_size
        h_off, w_off = np.zeros(n, np.int64), np.zeros(n, np.int64)
        mirror, labels = np.zeros(n, bool), np.zeros(n, np.int64)
        indices: list[int] = []
        skipped: list[Skipped] = []
        for j, (index, image, label) in enumerate(self._records(k, skipped)):
            self._check_transform(index, image)
            draw = self.transformer.draw(image.shape[1], image.shape[2])
            window = self.transformer.crop_uint8(image, draw)
            if window.shape != out.shape[1:]:
                raise DataError(f"layer '{self.spec.layer}': record {index} gives "
                                f"{'x'.join(map(str, window.shape))} after the transform, the "
                                f"batch is {'x'.join(map(str, out.shape[1:]))}; every image of "
                                f"a Data layer must have one size (or use crop_size)",
                                self.spec.path)
            out[j] = window
            h_off[j], w_off[j], mirror[j], labels[j] = draw.h_off, draw.w_off, draw.mirror, label
            indices.append(index)
        self.check_labels(labels, indices)
        return Draws(h_off, w_off, mirror, labels, tuple(skipped))

    def _force(self, image: np.ndarray) -> np.ndarray:
        if self.force_color and image.shape[0] == 1:
            return np.repeat(image, 3, axis=0)
        if self.force_gray and image.shape[0] == 3:
            gray = np.tensordot(_GRAY, image.astype(np.float32), axes=1)
            return np.clip(np.rint(gray), 0, 255).astype(np.uint8)[None]
        return image

    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the first record after force_color/force_gray, before the transform:
        what Caffe's DataLayer reads from the database to shape its top."""
        _, image, _, _ = self._read(0)
        c = 3 if self.force_color else 1 if self.force_gray else image.shape[0]
        return c, image.shape[1], image.shape[2]

    def output_shape(self) -> tuple[int, int, int]:
        return self.transformer.output_shape(*self.image_shape())


# -- worker processes ---------------------------------------------------------------------------
_WORKER_MAKERS: dict[int, BatchMaker] = {}


def _worker_init(specs: list[SourceSpec], parent: int) -> None:
    die_with_parent(parent)  # a killed trainer must not leave workers blocked on their queue
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the trainer's to handle
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _WORKER_MAKERS.clear()
    _WORKER_MAKERS.update({i: BatchMaker(s) for i, s in enumerate(specs)})


def _worker_raw(source: int, k: int, segment: str, slot: int) -> Draws:
    maker = _WORKER_MAKERS[source]
    return maker.raw(k, attach(segment, maker.batch_shape)[slot])


class Batches:
    """All data sources of a run; `stream(i, start, count)` yields batches start, start+1, ...
    of source i as (float32 data, int64 labels) tensors on `device`, `depth` ahead, made by
    `workers` processes (0: in this process), started at the first stream. `on_skip(line)` hears
    of each damaged record skipped (bad_records="skip"), once."""

    def __init__(self, specs: list[SourceSpec], workers: int = 0, depth: int = 4,
                 device: torch.device | str = "cpu", on_skip=None):
        self.specs = list(specs)
        self.device = torch.device(device)
        self.makers = [BatchMaker(s) for s in specs]  # checks every source in this process
        self.transforms = [BatchTransform(m.transformer, self.device) for m in self.makers]
        self.depth = max(1, depth)
        self.workers = workers
        self.pool: ProcessPoolExecutor | None = None
        self.on_skip = on_skip or (lambda line: None)
        self._skipped: set[tuple[int, int]] = set()

    def bound_labels(self, source: int, rules: tuple[LabelRule, ...]) -> None:
        """Check source `source`'s labels against `rules` (before its first stream)."""
        self.specs[source] = replace(self.specs[source], labels=tuple(rules))
        self.makers[source].spec = self.specs[source]

    def _pool(self) -> ProcessPoolExecutor:
        if self.pool is None:
            self.pool = ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_worker_init, initargs=(self.specs, os.getpid()))
        return self.pool

    def _finish(self, source: int, images: np.ndarray, draws: Draws
                ) -> tuple[torch.Tensor, torch.Tensor]:
        for skip in draws.skipped:
            if (source, skip.index) not in self._skipped:
                self._skipped.add((source, skip.index))
                self.on_skip(f"layer '{self.specs[source].layer}': skipping damaged record "
                             f"{skip.index} (key '{skip.key}') of {self.specs[source].path}: "
                             f"{skip.reason}; record {skip.replaced_by} is used instead")
        h_off, w_off, mirror, labels = (torch.from_numpy(a) for a in draws[:4])
        data = self.transforms[source](torch.from_numpy(images), h_off, w_off, mirror)
        return data, labels.to(self.device, non_blocking=True)

    def stream(self, source: int, start: int, count: int | None = None
               ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        stop = None if count is None else start + count
        shape = self.makers[source].batch_shape
        k = start
        if not self.workers:
            buffer = np.empty(shape, np.uint8)
            while stop is None or k < stop:
                yield self._finish(source, buffer, self.makers[source].raw(k, buffer))
                k += 1
            return
        ring = SlotRing(shape, self.depth + 1, self.device)
        free = deque(range(ring.count))
        pending: deque[tuple[Future, int]] = deque()
        try:
            while True:
                while len(pending) < self.depth and (stop is None or k < stop):
                    slot = free.popleft()
                    ring.wait(slot)
                    pending.append((self._pool().submit(_worker_raw, source, k, ring.name, slot),
                                    slot))
                    k += 1
                if not pending:
                    return
                future, slot = pending.popleft()
                batch = self._finish(source, ring.array[slot], future.result())
                ring.record(slot)  # the copy out of the slot is enqueued: reuse after it
                free.append(slot)
                yield batch
        finally:
            for future, _ in pending:
                future.cancel()
            ring.close()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None
        for maker in self.makers:
            maker.db.close()
