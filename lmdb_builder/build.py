"""A dataset folder as DIGITS made it, built atomically.

    <out>/labels.txt  train.txt  val.txt  [test.txt]
          train_db/  val_db/  [test_db/]          (LMDB of Caffe Datum, data.mdb + lock.mdb)
          mean.binaryproto  mean.jpg              (from the train images)
          create_train_db.log  create_val_db.log  [create_test_db.log]
          summary.json                            (settings, counts per class, skipped, time)

Each list file is written class by class (DIGITS' parse_folder order) as `<path> <label>`; each
database gets the same entries shuffled by its seeded stream (create_db's `random.shuffle`),
then loaded, resized and encoded (encode.py) and written 100 per transaction (writer.py). An
image that fails to load is skipped with DIGITS' warning `[path label] LoadImageError: ...` and
counted, or stops the build when `strict`.

Everything is written into a temporary folder beside `out` (`.<name>.tmp-XXXX`) and renamed to
`out` at the end; on any failure, Ctrl-C or a full disk the temporary folder is removed, so a
folder named `out` is always complete. An existing `out` is only replaced with `force`, and only
when it looks like a dataset folder (or is empty).
"""
from __future__ import annotations

import json
import logging
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import lmdb
from prototxt import atomic_folder
from tqdm import tqdm

from .encode import EncodeJob, Encoder
from .errors import BuilderError, LoadImageError, NotEnoughImagesError
from .folders import labels_text
from .mean import MeanAccumulator, write_mean
from .plan import DB_IDS, SPLITS, DatasetPlan, ImageSettings, order_rng
from .writer import INITIAL_MAP_SIZE, LmdbWriter

log = logging.getLogger(__name__)
SUMMARY = "summary.json"


class _Bar(tqdm):
    """A progress bar without tqdm's monitor thread, so that the encoder may still fork."""
    monitor_interval = 0


@dataclass(frozen=True)
class BuildOptions:
    """How to build: seed of every shuffle and noise, DIGITS' shuffle (on), --strict, workers."""
    seed: int = 0
    shuffle: bool = True
    strict: bool = False
    workers: int | None = None          # None: all cores
    force: bool = False
    progress: bool | None = None        # None: a bar only on a terminal
    map_size: int = INITIAL_MAP_SIZE


@dataclass
class DbResult:
    name: str
    records: int
    per_class: dict[str, int]
    skipped: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    map_size: int = 0


@dataclass
class BuildResult:
    out: Path
    labels: list[str]
    dbs: dict[str, DbResult]
    mean_shape: tuple[int, int, int]
    seconds: float
    summary: dict


class _DbLog:
    """Lines of create_<split>_db.log, in DIGITS' words, also sent to `logging`."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, level: int, message: str) -> None:
        log.log(level if level >= logging.WARNING else logging.DEBUG, message)  # the file keeps all
        stamp = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        self.lines.append(f"{stamp} [{logging.getLevelName(level):<7}] {message}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _looks_like_dataset(path: Path) -> bool:
    if not path.is_dir():
        return False
    if not any(path.iterdir()):
        return True
    return (path / SUMMARY).is_file() or ((path / "labels.txt").is_file() and (path / "train_db").is_dir())


def _check_output(out: Path, force: bool) -> None:
    if not out.exists():
        return
    if not force:
        raise BuilderError("already exists; choose another --out, or add --force to replace it", out)
    if not _looks_like_dataset(out):
        raise BuilderError("exists and is not a dataset folder, so --force will not replace it; "
                           "remove it yourself or choose another --out", out)


def _write_db(split: str, plan: DatasetPlan, folder: Path, image: ImageSettings,
              options: BuildOptions, encoder: Encoder,
              mean: MeanAccumulator | None) -> tuple[DbResult, _DbLog]:
    start = time.monotonic()
    entries = list(plan.splits[split])
    if options.shuffle:
        order_rng(options.seed, split).shuffle(entries)
    db_log = _DbLog()
    db_log(logging.INFO, f"{len(entries)} valid lines in file")
    for index, n in sorted(Counter(e.label for e in entries).items()):
        db_log(logging.DEBUG, f"Category {index} has {n} images.")
    job = EncodeJob(image, options.seed, DB_IDS[split], want_sum=mean is not None)
    per_class = {name: 0 for name in plan.labels}
    skipped: list[dict[str, str]] = []
    db_path = folder / f"{split}_db"
    last_report, done = time.monotonic(), 0
    bar = _Bar(total=len(entries), desc=f"{split}_db", unit="img", leave=False,
               disable=None if options.progress is None else not options.progress)
    try:
        with LmdbWriter(db_path, map_size=options.map_size) as writer:
            for chunk in encoder.run(job, entries):
                for record in chunk.records:
                    if record.error:
                        message = f"[{record.name} {record.label}] LoadImageError: {record.error}"
                        if options.strict:
                            raise LoadImageError(f"{record.error} (without --strict it would be "
                                                 "skipped with a warning)", record.name)
                        db_log(logging.WARNING, message)
                        skipped.append({"name": record.name, "error": record.error})
                        continue
                    writer.put(record.label, record.value)
                    per_class[plan.labels[record.label]] += 1
                if mean is not None and chunk.total is not None:
                    mean.add_sum(chunk.total, chunk.count)
                bar.update(len(chunk.records))
                done += len(chunk.records)
                if time.monotonic() - last_report > 2:
                    db_log(logging.DEBUG, f"Processed {done}/{len(entries)}")
                    last_report = time.monotonic()
            writer.flush()
            written, map_size = writer.count, writer.env.info()["map_size"]
    except lmdb.Error as exc:
        hint = " (is the disk full?)" if "space" in str(exc).lower() else ""
        raise BuilderError(f"writing the database failed: {exc}{hint}", db_path) from None
    finally:
        bar.close()
    if written == 0:
        raise BuilderError(f"no images written to {split}_db: all {len(entries)} failed to load", db_path)
    db_log(logging.INFO, f"{written} images written to database")
    seconds = time.monotonic() - start
    db_log(logging.INFO, f"Database created after {seconds:.0f} seconds.")
    return DbResult(f"{split}_db", written, per_class, skipped, round(seconds, 3), map_size), db_log


def _build_into(folder: Path, final: Path, plan: DatasetPlan, image: ImageSettings,
                options: BuildOptions) -> tuple[dict[str, DbResult], tuple[int, int, int]]:
    (folder / "labels.txt").write_text(labels_text(plan.labels), encoding="utf-8")
    for split in SPLITS:
        if plan.splits.get(split):
            lines = "".join(f"{e.name} {e.label}\n" for e in plan.splits[split])
            (folder / f"{split}.txt").write_text(lines, encoding="utf-8")
    dbs: dict[str, DbResult] = {}
    with Encoder(options.workers) as encoder:
        for split in SPLITS:
            if not plan.splits.get(split):
                continue
            mean = MeanAccumulator() if split == "train" else None
            dbs[split], db_log = _write_db(split, plan, folder, image, options, encoder, mean)
            if mean is not None:
                mean_image = mean.mean()
                write_mean(mean_image, folder / "mean.binaryproto", folder / "mean.jpg")
                for name in ("mean.binaryproto", "mean.jpg"):
                    db_log(logging.INFO, f'Mean saved at "{final / name}"')
            (folder / f"create_{split}_db.log").write_text(db_log.text(), encoding="utf-8")
    channels = mean_image.shape[2] if mean_image.ndim == 3 else 1
    return dbs, (channels, mean_image.shape[0], mean_image.shape[1])


def build_dataset(plan: DatasetPlan, out: str | Path, image: ImageSettings = ImageSettings(),
                  options: BuildOptions = BuildOptions()) -> BuildResult:
    """Build the dataset folder `out` from `plan` (see the module docstring)."""
    start = time.monotonic()
    out = Path(out).absolute()
    if not plan.splits.get("train"):
        raise NotEnoughImagesError("there are no training images to build a dataset from", out)
    if options.seed < 0:
        raise ValueError(f"the seed must be 0 or more, got {options.seed}")
    _check_output(out, options.force)
    with atomic_folder(out) as tmp:
        dbs, mean_shape = _build_into(tmp, out, plan, image, options)
        seconds = round(time.monotonic() - start, 3)
        summary = {
            "created": datetime.now().isoformat(timespec="seconds"),
            "method": plan.method,
            "source": plan.source,
            "image": asdict(image),
            "image_channel_order": "BGR" if image.channels == 3 else "L",
            "seed": options.seed,
            "shuffle": options.shuffle,
            "strict": options.strict,
            "labels": plan.labels,
            "skipped_classes": plan.skipped_classes,
            "databases": {f"{s}_db": asdict(r) for s, r in dbs.items()},
            "mean": {"file": "mean.binaryproto", "shape": [1, *mean_shape]},
            "seconds": seconds,
        }
        (tmp / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        _check_output(out, options.force)       # it may have appeared meanwhile
    return BuildResult(out, plan.labels, {f"{s}_db": r for s, r in dbs.items()}, mean_shape,
                       seconds, summary)
