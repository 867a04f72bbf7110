"""python -m converter --help"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from prototxt import STANDARD_NETWORKS, build_network, read_net
from prototxt.cli import command_parser, main_with_commands, positive_int

from .errors import ConverterError
from .layers.batch_norm import LAYOUTS
from .shapes import describe, fmt, infer_shapes, parse_dims


def load_net(spec: str, classes: int | None):
    """A .prototxt path, or a standard network name; --classes fills unset num_output."""
    net = build_network(spec) if spec in STANDARD_NETWORKS else read_net(Path(spec))
    if classes:
        for layer in net.layer:
            if layer.type == "InnerProduct" and not layer.inner_product_param.num_output:
                layer.inner_product_param.num_output = classes
    return net


def input_arg(text: str) -> tuple[str | None, tuple[int, ...]]:
    name, _, dims = text.rpartition("=")
    try:
        return name or None, parse_dims(dims)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--input takes [NAME=]NxCxHxW, e.g. 1x3x224x224: {exc}")


def _given(args) -> dict[str, tuple[int, ...]]:
    from prototxt import make_state
    from .shapes import default_input
    given = {}
    for name, dims in args.input or []:
        if name is None:
            name = default_input(args.net, make_state(args.phase, args.level, args.stage))
            if name is None:
                raise ConverterError("the net has no input to give --input to", args.network)
        given[name] = dims
    return given


def cmd_shapes(args: argparse.Namespace) -> int:
    args.net = load_net(args.network, args.classes)
    inference = infer_shapes(args.net, args.phase, args.stage, args.level, _given(args),
                             source=args.network)
    state = f"phase {args.phase}" + (f", stages {', '.join(args.stage)}" if args.stage else "")
    inputs = ", ".join(f"{k} {fmt(v)}" for k, v in inference.input_shapes.items())
    title = f"{args.network}: net '{args.net.name or 'unnamed'}', {state}, inputs {inputs}"
    print("\n".join(describe(inference, title)))
    return 0


def cmd_onnx(args: argparse.Namespace) -> int:
    from .deploy import export_deployment
    if args.job and (args.model or args.weights):
        raise ConverterError("give either --job or --model/--weights, not both")
    report = export_deployment(args.out, job=args.job, deploy=args.model, weights=args.weights,
                               mean=args.mean, labels=args.labels, resize_mode=args.resize_mode,
                               scale=args.scale, opset=args.opset, tolerance=args.tolerance,
                               snapshot=args.snapshot, dataset=args.dataset,
                               batchnorm=args.batchnorm, int8=args.int8, fp16=args.fp16,
                               calibrate=args.calibrate,
                               calibration_images=args.calibration_images, triton=args.triton,
                               triton_name=args.triton_name, max_batch_size=args.max_batch_size)
    print(report.summary())
    return 0


def cmd_layers(args: argparse.Namespace) -> int:
    from prototxt import atomic_write
    from .docs import DOC_PATH, render
    text = render()
    if args.check:
        if not DOC_PATH.is_file() or DOC_PATH.read_text(encoding="utf-8") != text:
            print(f"error: {DOC_PATH} is stale; run python -m converter layers --write",
                  file=sys.stderr)
            return 1
        return 0
    if args.write:
        atomic_write(DOC_PATH, text.encode("utf-8"))
        print(f"wrote {DOC_PATH}")
        return 0
    print(text, end="")
    return 0


def add_net_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("network", metavar="NET",
                   help=f"a .prototxt, or a standard network: {', '.join(STANDARD_NETWORKS)}")
    p.add_argument("--input", action="append", type=input_arg, metavar="[NAME=]NxCxHxW",
                   help="input shape (default: the net's); without NAME it is the first input")
    p.add_argument("--phase", choices=("TRAIN", "TEST"), default="TEST", help="default TEST")
    p.add_argument("--stage", action="append", default=[], help="a NetState stage (repeatable), "
                   "e.g. --stage deploy for DIGITS' all-in-one files")
    p.add_argument("--level", type=int, default=0, help="NetState level (default 0)")
    p.add_argument("--classes", type=int, help="num_output for InnerProduct layers that leave it "
                   "unset (DIGITS sets the number of classes)")


def build_parser() -> argparse.ArgumentParser:
    parser, sub = command_parser("python -m converter", "Caffe networks as PyTorch graphs with "
                                 "Caffe's numerics; .caffemodel I/O; ONNX export.")

    p = sub.add_parser("shapes", help="print every top's shape and parameter counts",
                       description="Infer shapes without running: each layer's tops as Caffe's "
                                   "'Top shape:' lines and its parameter count. A size that "
                                   "becomes zero or negative is an error naming the layer and "
                                   "the smallest input that works.")
    add_net_options(p)
    p.set_defaults(func=cmd_shapes)

    p = sub.add_parser("onnx", help="export a deploy net + weights to ONNX, checked against ONNX Runtime",
                       description="Export to ONNX (opset >= 17, dynamic batch, class probabilities "
                                   "out, preprocessing in metadata_props). The export is compared "
                                   "with ONNX Runtime and refused above --tolerance.")
    p.add_argument("--job", metavar="MODEL_DIR", help="a model job folder: ours or DIGITS' download "
                   "(deploy.prototxt, snapshot_iter_N.caffemodel, mean.binaryproto, labels.txt, "
                   "info.json), or one in a DIGITS server's jobs folder, whose labels and mean "
                   "are found in the dataset job that train_val.prototxt names (the sibling "
                   "folder of that id, else the path as written); status.pickle is never read")
    p.add_argument("--snapshot", type=int, metavar="N", help="with --job: use "
                   "snapshot_iter_N.caffemodel, N the iteration in its file name (default: the "
                   "largest N)")
    p.add_argument("--dataset", metavar="DATASET_DIR", help="with --job: the DIGITS dataset job "
                   "folder (labels.txt, mean.binaryproto) when it is not beside the model job")
    p.add_argument("--model", metavar="DEPLOY", help="a deploy .prototxt (with --weights)")
    p.add_argument("--weights", metavar="CAFFEMODEL", help="trained weights for --model")
    p.add_argument("--batchnorm", choices=LAYOUTS, help="the Caffe that wrote the weights "
                   "(nvcaffe-0.16 also means 0.17), for BatchNorm blobs that do not settle their "
                   "layout: 3 blobs with scale factor 1 and eps < 1e-5 or 5 blobs of 1 channel "
                   "(errors without it), 3 blobs from NVIDIA Caffe 0.16 with a factor copied from "
                   "a BVLC file (read as BVLC without it); blobs that settle it are read as they "
                   "say")
    p.add_argument("--mean", help="mean.binaryproto (default: the job's)")
    p.add_argument("--labels", help="labels.txt (default: the job's)")
    p.add_argument("--resize-mode", choices=("squash", "crop", "fill", "half_crop"),
                   help="DIGITS' resize mode (default: the job's info.json, else squash)")
    p.add_argument("--scale", type=float, help="input scale after mean subtraction (default: "
                   "train_val.prototxt's transform_param.scale, else 1)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset, 17 or newer (default 17)")
    p.add_argument("--tolerance", type=float, default=1e-4,
                   help="max abs difference PyTorch vs ONNX Runtime (default 1e-4)")
    p.add_argument("--out", required=True, help="the .onnx file to write")
    deploy = p.add_argument_group("deployment exports (converter/quantize.py, half.py, triton.py)")
    precision = deploy.add_mutually_exclusive_group()
    precision.add_argument("--int8", action="store_true", help="write a static QDQ int8 model "
                           "(ONNX Runtime's quantizer, per-channel weights), calibrated on "
                           "--calibrate; refused below 99 %% top-1 agreement with fp32 there")
    precision.add_argument("--fp16", action="store_true", help="write a float16 model for GPUs "
                           "(float32 input/output kept); checked like --int8 on --calibrate")
    deploy.add_argument("--calibrate", metavar="DATASET_DIR", help="the dataset job folder whose "
                        "val_db calibrates --int8 and checks --int8/--fp16, fed as the model's "
                        "metadata says")
    deploy.add_argument("--calibration-images", type=positive_int, metavar="N", help="val_db "
                        "records used, evenly spread (default 500, or all if fewer)")
    deploy.add_argument("--triton", metavar="REPO_DIR", help="also write REPO_DIR/NAME/"
                        "config.pbtxt, 1/model.onnx and labels.txt for Triton's ONNX Runtime "
                        "backend")
    deploy.add_argument("--triton-name", metavar="NAME", help="the Triton model name (default: "
                        "the --out file's stem)")
    deploy.add_argument("--max-batch-size", type=int, metavar="N", help="Triton max_batch_size "
                        "(default 32; 0 when the model's batch dimension is fixed)")
    p.set_defaults(func=cmd_onnx)

    p = sub.add_parser("layers", help="list the supported Caffe layer types (docs/supported_layers.md)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--write", action="store_true", help="rewrite docs/supported_layers.md")
    group.add_argument("--check", action="store_true", help="exit 1 if that file is stale")
    p.set_defaults(func=cmd_layers)
    return parser


def main(argv: list[str] | None = None) -> int:
    return main_with_commands(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
