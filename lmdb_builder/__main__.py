"""python -m lmdb_builder --help"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import lmdb
from prototxt.cli import command_parser, main_with_commands, positive_int

from .build import BuildOptions, BuildResult, build_dataset
from .datum import ENCODINGS
from .encode import default_workers
from .errors import BuilderError
from .folders import plan_folder, plan_list
from .images import DEFAULT_MAX_PIXELS, RESIZE_MODES
from .inspection import (dataset_labels, describe, describe_damage, find_dbs, inspect_db,
                         sample_grid, verify_db, verify_mean)
from .labels import report_labels
from .mean import read_mean
from .mnist import find_mnist_dir, load_mnist, plan_mnist
from .plan import DEFAULT_PNG_LEVEL, ImageSettings


def _image_size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)(?:x(\d+))?", text)
    if not match or int(match.group(1)) == 0 or (match.group(2) and int(match.group(2)) == 0):
        raise argparse.ArgumentTypeError(f"--image-size must be N or HxW, e.g. 28, 256 or 24x32; "
                                         f"got {text!r}")
    height = int(match.group(1))
    return height, int(match.group(2) or height)


def _percent(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"a percentage is 0-100, got {text}")
    return value



def _add_build_flags(p: argparse.ArgumentParser, size: str, channels: int) -> None:
    g = p.add_argument_group("dataset")
    g.add_argument("--out", required=True, help="dataset folder to create (built beside it, renamed when complete)")
    g.add_argument("--image-size", type=_image_size, default=_image_size(size), metavar="N|HxW",
                   help=f"stored image size (default {size})")
    g.add_argument("--channels", type=int, choices=(1, 3), default=channels,
                   help=f"1 grayscale (PIL luma) or 3 colour, stored BGR (default {channels})")
    g.add_argument("--resize-mode", choices=RESIZE_MODES, default="squash", help="default squash")
    g.add_argument("--encoding", choices=ENCODINGS, default="png",
                   help="png (default), jpg (quality 90) or none (raw CHW bytes)")
    g.add_argument("--png-level", type=int, choices=range(10), default=DEFAULT_PNG_LEVEL, metavar="0-9",
                   help=f"deflate level of png records: 0 stored, 1 fastest (default {DEFAULT_PNG_LEVEL}), "
                        "9 smallest; the pixels are the same at every level (DIGITS used PIL's 6)")
    g.add_argument("--seed", type=int, default=0,
                   help="seed of the split, the record order and the fill noise (default 0)")
    g.add_argument("--no-shuffle", dest="shuffle", action="store_false",
                   help="keep the list order in the databases (DIGITS shuffles)")
    g.add_argument("--strict", action="store_true",
                   help="stop at the first image that cannot be read (default: skip it with a warning)")
    g.add_argument("--workers", type=positive_int, default=None,
                   help=f"encoding processes (default: all cores, {default_workers()} here)")
    g.add_argument("--max-pixels", type=positive_int, default=DEFAULT_MAX_PIXELS,
                   help=f"refuse larger images as decompression bombs (default {DEFAULT_MAX_PIXELS})")
    g.add_argument("--force", action="store_true", help="replace an existing dataset folder")


def _split_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--min-per-class", type=int, default=2, help="DIGITS' minimum per class (default 2)")
    p.add_argument("--max-per-class", type=positive_int, default=None, help="keep at most N per class")


def _settings(args: argparse.Namespace) -> tuple[ImageSettings, BuildOptions]:
    height, width = args.image_size
    image = ImageSettings(height, width, args.channels, args.resize_mode, args.encoding, args.max_pixels,
                          args.png_level)
    options = BuildOptions(seed=args.seed, shuffle=args.shuffle, strict=args.strict,
                           workers=args.workers, force=args.force)
    return image, options


def _report(result: BuildResult, image: ImageSettings) -> int:
    counts = ", ".join(f"{name} {r.records}" for name, r in result.dbs.items())
    encoding = f"png level {image.png_level}" if image.encoding == "png" else image.encoding
    print(f"wrote {result.out}: {counts} records ({image.height}x{image.width}x{image.channels} "
          f"{encoding}, {image.resize_mode}), {len(result.labels)} labels, mean "
          f"{'x'.join(map(str, (1, *result.mean_shape)))}, in {result.seconds:.1f} s")
    for name, r in result.dbs.items():
        if r.skipped:
            print(f"  {name}: skipped {len(r.skipped)} image(s) that could not be read; see "
                  f"{result.out}/create_{name}.log", file=sys.stderr)
    return 0


def cmd_mnist(args: argparse.Namespace) -> int:
    folder = find_mnist_dir(args.mnist_dir, download=args.download)
    mnist = load_mnist(folder, invert=args.invert, limit=args.limit)
    plan = plan_mnist(mnist, pct_val=args.val_percent, pct_test=args.test_percent,
                      test_as_val=args.test_as_val, seed=args.seed, min_per_class=args.min_per_class)
    image, options = _settings(args)
    return _report(build_dataset(plan, args.out, image, options), image)


def cmd_mnist_images(args: argparse.Namespace) -> int:
    from .mnist_images import write_mnist_images
    mnist = load_mnist(find_mnist_dir(args.mnist_dir, download=args.download), invert=args.invert,
                       limit=args.limit)
    for split in args.split:
        listing = write_mnist_images(mnist, args.out, split, force=args.force)
        count = len(listing.read_text().splitlines())
        print(f"wrote {count} {split} images under {listing.parent}; list: {listing}")
    return 0


def cmd_folder(args: argparse.Namespace) -> int:
    plan = plan_folder(args.train_dir, args.val_dir, args.test_dir, args.val_percent,
                       args.test_percent, args.min_per_class, args.max_per_class, args.seed)
    image, options = _settings(args)
    return _report(build_dataset(plan, args.out, image, options), image)


def cmd_list(args: argparse.Namespace) -> int:
    plan = plan_list(args.train_list, args.labels, args.val, args.test, args.root)
    image, options = _settings(args)
    return _report(build_dataset(plan, args.out, image, options), image)


def _grid_path(args: argparse.Namespace, db: Path, many: bool) -> Path:
    """--grid as given for one database, with _<db> added for several; else a name here."""
    if args.grid:
        grid = Path(args.grid)
        return grid.with_name(f"{grid.stem}_{db.name}{grid.suffix or '.png'}") if many else grid
    return Path(f"{db.absolute().parent.name}_{db.name}_samples.png" if many
                else f"{db.absolute().name}_samples.png")


def cmd_inspect(args: argparse.Namespace) -> int:
    dbs = find_dbs(args.path)
    damaged = 0
    for db in dbs:
        info, samples = inspect_db(db, samples=0 if args.no_grid else args.samples)
        print("\n".join(describe(info, dataset_labels(db))))
        damaged += info.damage is not None
        if samples:
            grid = _grid_path(args, db, len(dbs) > 1)
            sample_grid(samples).save(grid)
            print(f"  {len(samples)} samples drawn in {grid}")
    mean = Path(args.path) / "mean.binaryproto"
    if mean.is_file():
        print(f"{mean}: {'x'.join(map(str, read_mean(mean).shape))} (CxHxW)")
    if damaged:
        print(f"error: {damaged} damaged database(s) in {args.path}; run python -m lmdb_builder "
              "verify for the readable records, then rebuild the dataset", file=sys.stderr)
        return 1
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    bad = 0
    for db in find_dbs(args.path):
        try:
            result = verify_db(db)
        except BuilderError as exc:     # the file check: truncated, damaged meta or root page
            print(f"{db}: DAMAGED: {exc}")
            bad += 1
            continue
        shapes = ", ".join(f"{'x'.join(map(str, s))} ({n})" for s, n in result.shapes.most_common())
        read = (f"{result.entries} of {result.expected} records read" if result.damage
                else f"{result.entries} records")
        print(f"{db}: {read}, {len(result.corrupt)} corrupt; shapes {shapes or '-'}")
        for line in describe_damage(result):
            print(line)
        bad += result.damage is not None
        for key, reason in result.corrupt[: args.max_report]:
            print(f"  corrupt {key}: {reason}")
        if len(result.corrupt) > args.max_report:
            print(f"  ... and {len(result.corrupt) - args.max_report} more")
        bad += len(result.corrupt)
        bad += report_labels(db, result, args.max_report)  # outside [0, lines of labels.txt)
        if db.name == "train_db" and len(result.shapes) == 1:
            problem = verify_mean(db.parent, next(iter(result.shapes)))
            if problem:
                print(f"  {problem}")
                bad += 1
    if bad:
        print(f"error: {bad} problem(s) found in {args.path}; rebuild the dataset (see above)",
              file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser, sub = command_parser("python -m lmdb_builder", "DIGITS datasets (MNIST, image folders, "
                                 "list files) into LMDB of Caffe Datum, byte-compatible with DIGITS.")

    p = sub.add_parser("mnist", help="MNIST as DIGITS' Getting Started built it",
                       description="Build MNIST the way DIGITS did from its downloader's folders "
                                   "(inverted digits, per-class split). Defaults follow DIGITS' "
                                   "Getting Started: 28x28 grayscale, png, 25%% validation.")
    p.add_argument("--mnist-dir", help="folder with the four idx .gz files (default $REDIGITS_MNIST_DIR, "
                                       "else ~/.cache/redigits/mnist, downloaded if missing)")
    p.add_argument("--no-download", dest="download", action="store_false",
                   help="never download; fail with where to put the files")
    p.add_argument("--no-invert", dest="invert", action="store_false",
                   help="keep the idx polarity (white digit on black); DIGITS inverted")
    val = p.add_mutually_exclusive_group()
    val.add_argument("--val-percent", type=_percent, default=25, help="per-class validation share (default 25)")
    val.add_argument("--test-as-val", action="store_true",
                     help="all 60,000 train images for training, the 10,000 test images as validation")
    p.add_argument("--test-percent", type=_percent, default=0, help="per-class test share (default 0)")
    p.add_argument("--min-per-class", type=int, default=2, help=argparse.SUPPRESS)
    p.add_argument("--limit", type=positive_int, help="use only the first N images of each idx file")
    _add_build_flags(p, "28", 1)
    p.set_defaults(func=cmd_mnist)

    p = sub.add_parser("mnist-images", help="MNIST as PNG folders + list files, as DIGITS' downloader",
                       description="Write <out>/<split>/<label>/<index>.png (inverted, as DIGITS' "
                                   "download_data did), labels.txt and <split>.txt, e.g. the test "
                                   "set for python -m inference classify-many.")
    p.add_argument("--out", required=True, help="folder to write <split>/ into")
    p.add_argument("--split", nargs="+", choices=("test", "train"), default=["test"])
    p.add_argument("--mnist-dir", help="folder with the four idx .gz files (default $REDIGITS_MNIST_DIR)")
    p.add_argument("--no-download", dest="download", action="store_false")
    p.add_argument("--no-invert", dest="invert", action="store_false")
    p.add_argument("--limit", type=positive_int, help="only the first N images")
    p.add_argument("--force", action="store_true", help="replace an existing split folder")
    p.set_defaults(func=cmd_mnist_images)

    p = sub.add_parser("folder", help="DIGITS' folder method: one subfolder per class",
                       description="Build from TRAIN_DIR/<class>/**/*.png|jpg|jpeg|bmp|ppm|pgm as "
                                   "DIGITS did: sorted classes, per-class shuffle and split.")
    p.add_argument("train_dir", metavar="TRAIN_DIR")
    p.add_argument("--val-dir", help="separate validation folder (same class names)")
    p.add_argument("--test-dir", help="separate test folder (same class names)")
    p.add_argument("--val-percent", type=_percent, default=None,
                   help="per-class validation share (default 25, or 0 with --val-dir)")
    p.add_argument("--test-percent", type=_percent, default=None, help="per-class test share (default 0)")
    _split_flags(p)
    _add_build_flags(p, "256", 3)
    p.set_defaults(func=cmd_folder)

    p = sub.add_parser("list", help="DIGITS' text-file method: '<path> <label>' lines",
                       description="Build from list files of '<path> <label>' lines and a labels.txt.")
    p.add_argument("train_list", metavar="TRAIN.txt")
    p.add_argument("--val", metavar="VAL.txt", help="validation list")
    p.add_argument("--test", metavar="TEST.txt", help="test list")
    p.add_argument("--labels", required=True, metavar="labels.txt", help="label names, one per line")
    p.add_argument("--root", help="folder that relative paths in the lists start from")
    _add_build_flags(p, "256", 3)
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("inspect", help="records, shapes, encodings, label histogram, sample picture",
                       description="Describe a database folder or a dataset folder, and draw a "
                                   "grid of evenly spaced samples into a PNG.")
    p.add_argument("path", metavar="PATH")
    p.add_argument("--grid", help="PNG to draw the samples into (default <dataset>_<db>_samples.png here)")
    p.add_argument("--samples", type=positive_int, default=64, help="samples in the grid (default 64)")
    p.add_argument("--no-grid", action="store_true", help="draw no picture")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("verify", help="decode every record; report corrupt ones by key",
                       description="Decode every record of a database or dataset folder; exit 1 "
                                   "if any is corrupt or the mean does not fit the records.")
    p.add_argument("path", metavar="PATH")
    p.add_argument("--max-report", type=int, default=50, help="corrupt keys to list (default 50)")
    p.set_defaults(func=cmd_verify)
    return parser


def main(argv: list[str] | None = None) -> int:
    return main_with_commands(build_parser(), argv, errors=(BuilderError, lmdb.Error))


if __name__ == "__main__":
    sys.exit(main())
