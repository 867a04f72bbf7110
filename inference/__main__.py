"""python -m inference: ONNX Runtime classification: command line and a draw-a-digit web app."""
from __future__ import annotations

import argparse
import json
import sys

from lmdb_builder import BuilderError
from prototxt.cli import command_parser, main_with_commands, positive_int

from .errors import InferenceError

PROVIDER_CHOICES = ("cpu", "cuda", "tensorrt")



def _batches(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"--batch takes sizes like 1,32; got {text!r}")
    return values


def _classifier(args: argparse.Namespace, max_batch: int = 64):
    from .classifier import Classifier
    return Classifier(args.model, args.provider, args.crop, max_batch=max_batch)


def cmd_classify(args: argparse.Namespace) -> int:
    clf = _classifier(args)
    results = clf.classify(args.images, args.top, drawing=args.drawing)
    if args.json:
        print(json.dumps({"model": str(clf.path), "provider": clf.provider, "results": [
            {"image": image, "predictions": [{"label": p.label, "probability": p.probability}
                                             for p in predictions]}
            for image, predictions in zip(args.images, results)]}, indent=2))
        return 0
    for image, predictions in zip(args.images, results):
        print(image)
        for p in predictions:
            print(f"  {p.percent():6.2f} %  {p.label}")
    return 0


def cmd_classify_many(args: argparse.Namespace) -> int:
    from .evaluate import evaluate, read_list
    clf = _classifier(args, args.batch)
    try:
        items = read_list(args.list, args.root, len(clf.labels))
    except UnicodeDecodeError as exc:
        raise InferenceError(f"not a text list file (byte 0x{exc.object[exc.start]:02X} at offset "
                             f"{exc.start} is not UTF-8); a list file holds '<path> <label>' "
                             "lines, e.g. val.txt of a DIGITS dataset", args.list) from None
    result = evaluate(clf, items, args.top, args.batch, workers=args.workers)
    if args.json:
        print(json.dumps({"model": str(clf.path), "provider": clf.provider, **result.as_dict()},
                         indent=2))
    else:
        print(result.table())
        for path, why in result.failed[:10]:
            print(f"  could not classify {path}: {why}", file=sys.stderr)
    return 0 if result.count else 1


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import bench, markdown
    clf = _classifier(args, max(args.batch))
    rows = bench(clf, args.batch, args.seconds, cuda_graph=args.cuda_graph)
    provider = clf.provider + (" (CUDA graph)" if args.cuda_graph else "")
    if args.json:
        print(json.dumps({"model": str(clf.path), "provider": provider,
                          "rows": [r.as_dict() for r in rows]}, indent=2))
    else:
        print(f"{clf.path} on {provider} (input {'x'.join(map(str, clf.info.input_shape))}, "
              "network only, no preprocessing)")
        print(markdown(rows))
    return 0


def cmd_read(args: argparse.Namespace) -> int:
    from .read import ReadLimits, read_digits
    clf = _classifier(args)
    limits = ReadLimits(max_pieces=args.max_pieces, max_windows=args.max_windows)
    readings = [(image, read_digits(clf, image, limits)) for image in args.images]
    if args.json:
        print(json.dumps({"model": str(clf.path), "provider": clf.provider, "results": [
            {"image": image, **reading.as_dict()} for image, reading in readings]}, indent=2))
        return 0
    for image, reading in readings:
        if len(readings) > 1 or not args.table:
            print(f"{image}: {reading.confidence * 100:.1f} % confident"
                  + (f" ({'; '.join(reading.notes)})" if reading.notes else ""),
                  file=sys.stderr if args.table else sys.stdout)
        if args.table:
            sys.stdout.write(reading.csv())
        else:
            for line in reading.lines:
                print(f"  {line.text}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .server import ServerSettings, serve
    settings = ServerSettings(max_batch=args.max_batch, max_wait_ms=args.max_wait_ms,
                              concurrency=args.concurrency,
                              max_upload_bytes=args.max_upload_mb * 2**20,
                              max_pixels=args.max_pixels)
    serve(args.model, args.host, args.port, settings, args.provider, args.crop, args.access_log)
    return 0


def _model_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help="model.onnx from `python -m converter onnx`")
    p.add_argument("--provider", choices=PROVIDER_CHOICES,
                   help="ONNX Runtime provider (default: TensorRT, CUDA or CPU, the first that works)")
    p.add_argument("--crop", choices=("resize", "center"), default="resize",
                   help="resize: DIGITS' Classify One squeezes the whole image to the input size "
                        "(default); center: Caffe's TEST-phase centre crop, as in validation")


def build_parser() -> argparse.ArgumentParser:
    parser, commands = command_parser("python -m inference", "ONNX Runtime classification: "
                                      "command line and a draw-a-digit web app.")

    p = commands.add_parser("classify", help="top-5 classes of images (DIGITS' Classify One)",
                            description="Classify images as DIGITS' Classify One did: the "
                                        "dataset's resize, the mean image, top-5 with percents.")
    _model_flags(p)
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--top", type=positive_int, default=5, help="classes shown per image (default 5)")
    p.add_argument("--drawing", action="store_true",
                   help="prepare each image as a drawn digit first (crop, 20x20, centre of mass)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_classify)

    p = commands.add_parser("classify-many", help="accuracy and confusion matrix of a list file "
                            "(DIGITS' Classify Many)",
                            description="Classify every '<path> <label>' line of a list file "
                                        "(train.txt/val.txt/test.txt); print top-1 and top-k "
                                        "accuracy and the confusion matrix.")
    _model_flags(p)
    p.add_argument("list", metavar="LIST.txt")
    p.add_argument("--root", help="folder the relative paths start from (default: the list "
                                  "file's folder)")
    p.add_argument("--top", type=positive_int, default=5, help="k of top-k accuracy (default 5)")
    p.add_argument("--batch", type=positive_int, default=64, help="images per run (default 64)")
    p.add_argument("--workers", type=positive_int, default=4, help="image-loading threads (default 4)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_classify_many)

    p = commands.add_parser("bench", help="network latency (p50/p99) and throughput",
                            description="Time the ONNX Runtime session on random input, for "
                                        "each batch size.")
    _model_flags(p)
    p.add_argument("--batch", type=_batches, default=[1, 32], help="sizes, e.g. 1,32 (default)")
    p.add_argument("--seconds", type=float, default=3.0, help="per batch size (default 3)")
    p.add_argument("--cuda-graph", action="store_true",
                   help="CUDA: replay each batch size's run as one CUDA graph (fixed shapes)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_bench)

    p = commands.add_parser("read", help="read numbers and tables of handwritten digits",
                            description="Find the digits in each image (a number, a row, a "
                                        "table), classify each with the model and print the "
                                        "string per line; --table writes CSV, --json boxes, "
                                        "top-3 and confidences.")
    _model_flags(p)
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--table", action="store_true",
                   help="group the digits into rows and columns and print CSV")
    p.add_argument("--json", action="store_true", help="print JSON (lines, cells, digits, boxes)")
    p.add_argument("--max-pieces", type=positive_int, default=2000,
                   help="refuse pages with more pieces of digits than this (default 2000, "
                        "about 1000 digits)")
    p.add_argument("--max-windows", type=positive_int, default=60_000,
                   help="reading by windows (a model with a 'none' class): refuse pages with "
                        "more windows than this (default 60000, about 500 digits)")
    p.set_defaults(func=cmd_read)

    p = commands.add_parser("serve", help="HTTP server with a drawing page and dynamic batching",
                            description="Serve GET / (draw a digit), POST /predict (multipart "
                                        "field 'image'), GET /healthz and GET /model.")
    _model_flags(p)
    p.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (this machine only)")
    p.add_argument("--port", type=int, default=8000, help="default 8000")
    p.add_argument("--max-batch", type=positive_int, default=32, help="images per run (default 32)")
    p.add_argument("--max-wait-ms", type=float, default=5.0,
                   help="how long a request waits for others to share its run (default 5)")
    p.add_argument("--concurrency", type=positive_int, default=1,
                   help="ONNX Runtime runs at once (default 1; more can help on a GPU)")
    p.add_argument("--max-upload-mb", type=positive_int, default=5, help="default 5")
    p.add_argument("--max-pixels", type=positive_int, default=None,
                   help="refuse larger images (default: 1048576 = 1024x1024 for a digit model, "
                        "4194304 = 2048x2048 for others)")
    p.add_argument("--access-log", action="store_true", help="log every request")
    p.set_defaults(func=cmd_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    return main_with_commands(build_parser(), argv, errors=(InferenceError, BuilderError))


if __name__ == "__main__":
    sys.exit(main())
