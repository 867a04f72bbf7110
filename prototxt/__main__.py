"""python -m prototxt: check, split and upgrade Caffe files."""
from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

from google.protobuf.message import Message

from . import caffe_pb2, io
from .cli import add_common_flags, positive_int, run
from .digits import MEAN_CHOICES, DatasetFacts, digits_split, write_split
from .errors import DigitsError, PrototxtError
from .layer_types import KNOWN_LAYER_TYPES
from .networks import STANDARD_NETWORKS, network_path
from .upgrade import upgrade_net, upgrade_solver

KINDS = {".caffemodel": "caffemodel", ".binaryproto": "blob", ".solverstate": "solverstate"}


def load_any(path: Path) -> tuple[str, Message, list[str]]:
    """Read a Caffe file of any kind: (kind, message, upgrade notes).

    Binary kinds go by suffix; text is tried as a net and as a solver, and when both fail the
    error of the parse that got further is the one reported.
    """
    kind = KINDS.get(path.suffix.lower())
    if kind == "caffemodel":
        net = io.read_caffemodel(path, upgrade=False)
        return kind, net, upgrade_net(net, str(path))
    if kind == "blob":
        return kind, io.read_blob(path), []
    if kind == "solverstate":
        return kind, io.read_solverstate(path), []
    errors = []
    for kind, message in (("net", caffe_pb2.NetParameter()), ("solver", caffe_pb2.SolverParameter())):
        try:
            io.read_text(path, message)
        except PrototxtError as exc:
            errors.append(exc)
            continue
        notes = upgrade_net(message, str(path)) if kind == "net" else upgrade_solver(message, str(path))
        return kind, message, notes
    raise max(errors, key=lambda e: (e.line or 0, e.column or 0))


def _rules(layer: caffe_pb2.LayerParameter) -> str:
    parts = []
    for word, rules in (("include", layer.include), ("exclude", layer.exclude)):
        for rule in rules:
            items = []
            if rule.HasField("phase"):
                items.append(caffe_pb2.Phase.Name(rule.phase))
            items += [f"stage={s}" for s in rule.stage] + [f"not_stage={s}" for s in rule.not_stage]
            if rule.HasField("min_level") or rule.HasField("max_level"):
                items.append(f"level {rule.min_level if rule.HasField('min_level') else ''}.."
                             f"{rule.max_level if rule.HasField('max_level') else ''}")
            parts.append(f"{word}({' '.join(items)})")
    return " ".join(parts)


def describe(path: Path, kind: str, message: Message, notes: list[str], summary: bool) -> list[str]:
    """Lines that `check` prints for one file; the unknown layer types are marked."""
    lines = []
    if kind in ("net", "caffemodel"):
        net = message
        types = Counter(layer.type for layer in net.layer)
        lines.append(f"{path}: {kind} {net.name!r}, {len(net.layer)} layers"
                     + (f", inputs {', '.join(net.input)}" if len(net.input) else ""))
        if not summary:
            width = max([len(layer.name) for layer in net.layer] + [4])
            for i, layer in enumerate(net.layer):
                flag = "" if layer.type in KNOWN_LAYER_TYPES else "  <- unsupported"
                blobs = "".join(f" [{'x'.join(map(str, io.blob_shape(b)))}]" for b in layer.blobs)
                lines.append(f"  {i:4d} {layer.name:<{width}} {layer.type:<24} "
                             f"{','.join(layer.bottom)} -> {','.join(layer.top)}"
                             f"{blobs} {_rules(layer)}".rstrip() + flag)
        lines.append("  types: " + ", ".join(f"{t} x{n}" for t, n in sorted(types.items())))
        unknown = sorted(t for t in types if t not in KNOWN_LAYER_TYPES)
        if unknown:
            lines.append("  unsupported layer types: " + ", ".join(
                f"{t!r} ({', '.join(l.name for l in net.layer if l.type == t)})" for t in unknown))
    elif kind == "solver":
        s = message
        net = s.net or s.train_net or ("<inline>" if s.HasField("net_param") else "<none>")
        lines.append(f"{path}: solver type {s.type}, net {net}, base_lr {s.base_lr:g}, lr_policy "
                     f"{s.lr_policy or '<unset>'}, max_iter {s.max_iter}")
    elif kind == "blob":
        lines.append(f"{path}: blob {'x'.join(map(str, io.blob_shape(message)))}")
    else:
        lines.append(f"{path}: solver state at iteration {message.iter}, "
                     f"{len(message.history)} history blobs, net {message.learned_net!r}")
    lines += [f"  upgraded: {note}" for note in notes]
    return lines


def cmd_check(args: argparse.Namespace) -> int:
    failed = 0
    for name in args.files:
        path = Path(name)
        try:
            kind, message, notes = load_any(path)
        except PrototxtError as exc:
            if args.debug:
                raise
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
            continue
        print("\n".join(describe(path, kind, message, notes, args.summary)))
    if failed:
        print(f"error: {failed} of {len(args.files)} file(s) could not be read; fix the place "
              "named above", file=sys.stderr)
    return 2 if failed else 0


def _image_dims(text: str) -> tuple[int, int, int]:
    match = re.fullmatch(r"0*([1-9]\d*)x0*([1-9]\d*)x([13])", text)
    if not match:
        raise argparse.ArgumentTypeError(f"--image must be HxWxC with H, W at least 1 and C 1 or 3, "
                                         f"e.g. 256x256x3; got {text!r}")
    return int(match.group(1)), int(match.group(2)), int(match.group(3))



def cmd_split(args: argparse.Namespace) -> int:
    source = network_path(args.network) if args.network in STANDARD_NETWORKS else Path(args.network)
    network = io.read_net(source)
    height, width, channels = args.image
    dataset = Path(args.dataset).absolute()
    labels = dataset / "labels.txt"
    classes = args.classes
    if classes is None:
        if not labels.is_file():
            raise PrototxtError("give --classes N, or a --dataset folder that has labels.txt", labels)
        classes = sum(1 for line in labels.read_text().splitlines() if line.strip())
        if not classes:
            raise PrototxtError("labels.txt names no class (one per line); give --classes N",
                                labels)
    # A dataset folder that exists here tells whether it has a val set; a path from another
    # machine (a DIGITS job being reproduced) is taken to have one, as DIGITS' default.
    has_val = (dataset / "val_db").exists() if dataset.is_dir() else True
    facts = DatasetFacts(num_classes=classes, height=height, width=width, channels=channels,
                         dataset_dir=str(dataset), has_val_set=has_val)
    try:
        split = digits_split(network, facts, crop_size=args.crop, use_mean=args.mean,
                             batch_size=args.batch_size)
    except DigitsError as exc:  # DIGITS' checks name no file: the network is what is split
        if exc.path is not None:
            raise
        raise DigitsError(exc.message, source, field=exc.field) from None
    write_split(split, Path(args.out))
    shape = "x".join(map(str, split.deploy.input_shape[0].dim))
    print(f"wrote {args.out}/original.prototxt, train_val.prototxt ({len(split.train_val.layer)} "
          f"layers), deploy.prototxt ({len(split.deploy.layer)} layers, input {shape})")
    return 0


def cmd_upgrade(args: argparse.Namespace) -> int:
    src, dst = Path(args.input), Path(args.output)
    kind, message, notes = load_any(src)
    if kind in ("net", "solver"):
        io.write_text(message, dst)
    else:
        io.write_binary(message, dst)
    print(f"wrote {dst} ({kind}; " + ("; ".join(notes) if notes else "already current") + ")")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m prototxt",
        description="Caffe files: check them, split a DIGITS all-in-one network into "
                    "train_val/deploy, upgrade old formats.")
    add_common_flags(parser)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("check", help="parse and upgrade files, list layers and types",
                       description="Parse each file (net or solver .prototxt, .caffemodel, "
                                   ".binaryproto, .solverstate), upgrade old formats, list layers; "
                                   "layer types Caffe does not know are marked unsupported.")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--summary", action="store_true", help="type counts only, no layer list")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("split", help="DIGITS' all-in-one network -> original/train_val/deploy",
                       description="Write original.prototxt, train_val.prototxt and deploy.prototxt "
                                   "exactly as DIGITS 6.1 would for a classification dataset.")
    p.add_argument("network", help=f"a .prototxt, or a standard network: {', '.join(STANDARD_NETWORKS)}")
    p.add_argument("--classes", type=positive_int, help="number of classes (default: lines of DATASET/labels.txt)")
    p.add_argument("--image", type=_image_dims, required=True, metavar="HxWxC",
                   help="dataset image size, e.g. 256x256x3 or 28x28x1")
    p.add_argument("--crop", type=positive_int, help="crop size (DIGITS' form field; must fit the image)")
    p.add_argument("--mean", choices=MEAN_CHOICES, default="image", help="mean subtraction (default image)")
    p.add_argument("--dataset", default=".", help="dataset job folder (train_db, val_db, mean.binaryproto)")
    p.add_argument("--batch-size", type=positive_int, help="batch size for train and val (default: the network's)")
    p.add_argument("--out", required=True, help="folder to write the three files into")
    p.set_defaults(func=cmd_split)

    p = sub.add_parser("upgrade", help="rewrite an old-format file in the current format",
                       description="Read IN (V1 net, old solver_type, V1 caffemodel...), upgrade it, "
                                   "and write OUT in the same encoding (text or binary).")
    p.add_argument("input", metavar="IN")
    p.add_argument("output", metavar="OUT")
    p.set_defaults(func=cmd_upgrade)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run(lambda args: args.func(args), build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
