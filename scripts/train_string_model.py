"""Train the string reader's window model: an 11-class CNN (0-9 and "none") that reads a
window of a line of digits (inference/read/windows.py) and knows when the window is wrong,
with redigits' own tools used as a DIGITS user would.

    python scripts/train_string_model.py [--out runs/string-model] [--epochs 3] [--seed 15]
        [--weights PREVIOUS.caffemodel|PREVIOUS/job] [--mine PREVIOUS/model.onnx] [--strings 5000]
        [--per-class 3000] [--rounds N] [--lr 0.05] [--widths 32,64,64,256] [--no-augment]
        [--context] [--right-per-digit 2]

Steps (everything from MNIST's *train* split, digits 0-54,999: the benchmark reads test
digits, and 55,000-59,999 are kept for tuning the reader):
  1. images/<class>/*.png, 28 x 28 black on white, each normalized exactly as the reader
     normalizes a window (reader.span_field):
       0-9   `--per-class` MNIST training digits per class and a distorted copy of each
             (distort: affine + elastic), plus right windows: strings of 3-6 training digits,
             half of them distorted, are composed touching, overlapping, separated and
             slanted (inference/read/compose.py, which records which digit owns each pixel),
             the reader's own segmentation (reader.segment) lists every window of every line,
             and compose.window_label names the digit whose columns a window spans edge to
             edge (within 0.12 x H or a quarter of the digit's width) holding at most
             fragments of its neighbours; `--right-per-digit` of them per digit (default 2);
       none  wrong windows (an edge more than twice that tolerance from every digit's, or
             most of a neighbour taken in: half a digit, two digits, a digit and a half),
             WRONG_PER_STRING per string at random, or, with `--mine`, half of them the ones
             a previous round's model finds most digit-like (hard negatives: without them,
             strokes of a digit read as extra 1s).
     Strings are composed by `--workers` processes, each string from its own random stream.
     With `--context` every image is RGB (reader.span_field): the window's ink, the ink
     beside it (what it cuts through), both; a single digit has nothing beside it.
  2. A DIGITS dataset with lmdb_builder's folder method (28 x 28 grey, or colour with
     `--context`; 10 % validation).
  3. A model job from the window net (window_net: LeNet's input, three convolutions with
     BatchNorm, fc, dropout); `trainer new` sets num_output from labels.txt (11 classes).
     `--weights` from a previous round's model copies every layer.
  4. `trainer run`, then `converter onnx --job` -> <out>/job/model.onnx (labels.txt has "none",
     so inference.read reads by windows with it).
`--rounds N` repeats steps 1-4 in <out>/round-1..N, each round mining with the previous
round's model and starting from its weights (seed + 1 a round). The README gives the rounds
that made the benchmark's model.
REDIGITS_MNIST_DIR names the MNIST folder (default ../shared/data/mnist).
"""
from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
from google.protobuf import text_format
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from inference.drawing import normalize_drawing  # noqa: E402
from inference.read.compose import compose_string, window_labels  # noqa: E402
from converter.onnx_export import find_job  # noqa: E402
from inference import Classifier  # noqa: E402
from inference.read.reader import (NONE_LABEL, digit_classes, segment, span_field,  # noqa: E402
                                   span_field_bytes)
from lmdb_builder import load_mnist  # noqa: E402
from prototxt.networks.common import accuracy_loss_softmax, data_layers, pool  # noqa: E402
from prototxt.networks.lenet import LEARN  # noqa: E402
from prototxt.netspec import Net  # noqa: E402

WRONG_PER_STRING = 14    # wrong windows kept per string, at random (of about 400)
RIGHT_PER_DIGIT = 2      # right windows kept per digit (of the few a grid step apart): default
TRAIN_DIGITS = 55_000    # MNIST train digits used; the last 5,000 are kept for tuning the reader


def distort(digit: np.ndarray, rng: np.random.Generator, alpha: float = 24.0,
            sigma: float = 4.0) -> np.ndarray:
    """A 28 x 28 digit (ink bright) bent as another hand might write it: rotated +-12 degrees,
    sheared +-0.25, scaled 0.85-1.1 per axis about the centre, then an elastic displacement
    (Simard et al. 2003: uniform noise in [-1, 1] smoothed by a Gaussian of `sigma` px and
    scaled by `alpha` px)."""
    h, w = digit.shape
    a = np.deg2rad(rng.uniform(-12, 12))
    rotate = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    forward = rotate @ np.array([[1, rng.uniform(-0.25, 0.25)], [0, 1]]) @ \
        np.diag(rng.uniform(0.85, 1.1, 2))
    centre = np.array([(w - 1) / 2, (h - 1) / 2])
    yy, xx = np.mgrid[0:h, 0:w]
    source = np.stack([xx, yy], -1) - centre
    source = source @ np.linalg.inv(forward).T + centre     # where each output pixel comes from
    bend = [cv2.GaussianBlur(rng.uniform(-1, 1, (h, w)), (0, 0), sigma) * alpha for _ in "xy"]
    return cv2.remap(digit, (source[..., 0] + bend[0]).astype(np.float32),
                     (source[..., 1] + bend[1]).astype(np.float32), cv2.INTER_LINEAR,
                     borderValue=0)


def label_windows(composed, rng: np.random.Generator, miner=None, context: bool = False,
                  right_per_digit: int = RIGHT_PER_DIGIT
                  ) -> tuple[list[Image.Image], list[tuple[int, Image.Image]]]:
    """(wrong windows, [(digit index, right window)]) of one composed string, as 28 x 28
    images normalized as the reader normalizes a window (RGB with their surroundings if
    `context`: reader.span_field). With a `miner` (the previous round's model, an
    inference.Classifier), half the wrong windows are the ones it finds most digit-like, the
    rest at random."""
    page, plans = segment(composed.image, windowed=True)
    if page.scale != 1:
        raise SystemExit("error: composed strings are read at their own size; got a reduced page")
    wrong, right = [], {}
    for plan in plans:
        for (_, spans), labels in zip(plan.cells, window_labels(composed.owners, plan)):
            for span, k in zip(spans, labels):
                if k >= 0:
                    right.setdefault(k, []).append(span)
                elif k == -1:
                    wrong.append(span)

    def pick(spans: list, count: int) -> list:
        return [spans[i] for i in rng.permutation(len(spans))[:count]]

    def field(span) -> Image.Image:
        return span_field(span, "white", context)

    if miner is not None and wrong:
        # hard negatives: the wrong windows the previous model finds most digit-like
        seen = miner.info.sees_context
        p = miner.probabilities(np.stack([miner.preprocessor(span_field_bytes(s, "white", seen))
                                          for s in wrong]))
        columns, _ = digit_classes(list(miner.labels), p.shape[1])
        order = np.argsort(-p[:, columns].max(axis=1))
        half = WRONG_PER_STRING // 2
        chosen = [wrong[i] for i in order[:half]] + \
            pick([wrong[i] for i in order[half:]], WRONG_PER_STRING - half)
    else:
        chosen = pick(wrong, WRONG_PER_STRING)
    return [field(s) for s in chosen], [(k, field(s)) for k, spans in right.items()
                                        for s in pick(spans, right_per_digit)]


_WORKER: dict = {}   # per process: the training digits, the miner, the settings (_start)
KINDS = ("touching", "touching", "overlapping", "separated", "slanted")


def _start(mnist_dir: Path, mine: Path | None, augment: bool, seed: int,
           threads: int | None, context: bool = False,
           right_per_digit: int = RIGHT_PER_DIGIT) -> None:
    raw = load_mnist(mnist_dir, invert=False)
    _WORKER.update(images=raw.train_images[:TRAIN_DIGITS], labels=raw.train_labels[:TRAIN_DIGITS],
                   miner=Classifier(str(mine), provider="cpu", threads=threads) if mine else None,
                   augment=augment, seed=seed, context=context, right_per_digit=right_per_digit)


def string_windows(s: int) -> list[tuple[str, Image.Image]]:
    """(class name, window) pairs of composed string number `s`: its own random stream
    ([seed, s]), so the images do not depend on how many workers made them."""
    images, labels, augment = _WORKER["images"], _WORKER["labels"], _WORKER["augment"]
    rng = np.random.default_rng([_WORKER["seed"], s])
    idx = rng.integers(0, len(labels), int(rng.integers(3, 7)))
    digits = [distort(images[i], rng) if augment and rng.random() < 0.5 else images[i]
              for i in idx]
    composed = compose_string(digits, list(labels[idx]), KINDS[s % len(KINDS)], rng)
    wrong, right = label_windows(composed, rng, _WORKER["miner"], _WORKER["context"],
                                 _WORKER["right_per_digit"])
    return [(NONE_LABEL, image) for image in wrong] + \
        [(str(int(labels[idx][k])), image) for k, image in right]


def build_images(folder: Path, mnist_dir: Path, per_class: int, strings: int, seed: int,
                 mine: Path | None = None, augment: bool = True, workers: int = 1,
                 context: bool = False, right_per_digit: int = RIGHT_PER_DIGIT) -> dict:
    """Step 1 into `folder`/<class>/NNNNNN.png; returns the count per class."""
    counts = {str(d): 0 for d in range(10)} | {NONE_LABEL: 0}
    for name in counts:
        (folder / name).mkdir(parents=True, exist_ok=True)

    def save(name: str, image: Image.Image) -> None:
        image.save(folder / name / f"{counts[name]:06d}.png")
        counts[name] += 1

    settings = (mnist_dir, mine, augment, seed, 1 if workers > 1 else None, context, right_per_digit)
    _start(mnist_dir, mine if workers <= 1 else None, augment, seed, None, context,  # workers mine
           right_per_digit)
    images, labels = _WORKER["images"], _WORKER["labels"]
    rng = np.random.default_rng(seed)
    for d in range(10):
        for i in np.flatnonzero(labels == d)[:per_class]:
            for image in (images[i], distort(images[i], rng)) if augment else (images[i],):
                save(str(d), normalize_drawing(Image.fromarray(image), "white", context))
    with multiprocessing.get_context("spawn").Pool(workers, _start, settings) \
            if workers > 1 else contextlib.nullcontext() as pool:
        made = pool.imap(string_windows, range(strings), chunksize=16) if pool \
            else map(string_windows, range(strings))
        for s, windows in enumerate(made):
            for name, image in windows:
                save(name, image)
            if s % 500 == 0:
                print(f"  {s}/{strings} strings: {counts}", flush=True)
    return counts


def window_net(out: Path, widths: tuple[int, int, int, int]) -> Path:
    """The window model's network, written to <out>/window_net.prototxt: DIGITS' LeNet input
    (28 x 28 grey, mean subtracted, x 1/80), then conv5 w1 -> max2 -> conv3 w2 -> conv3 w3 ->
    max2 -> fc w4 -> dropout 0.3 -> fc (classes: DIGITS sets 11 from labels.txt). Each
    convolution is followed by BatchNorm + Scale (BVLC's pair) and ReLU."""
    net = Net("DigitWindow")
    x = data_layers(net, train_batch=64, val_batch=100)
    x = net.layer("scale", "Power", x, top="scaled", power_param=dict(scale=0.0125))
    layers = (("conv1", widths[0], 5, "pool1"), ("conv2", widths[1], 3, None),
              ("conv3", widths[2], 3, "pool2"))
    for name, width, kernel, pooled in layers:
        x = net.layer(name, "Convolution", x, param=[dict(lr_mult=1)], convolution_param=dict(
            num_output=width, kernel_size=kernel, pad=kernel // 2, bias_term=False,
            weight_filler=dict(type="msra")))
        net.layer(f"{name}_bn", "BatchNorm", x, top=x)
        net.layer(f"{name}_scale", "Scale", x, top=x, scale_param=dict(bias_term=True))
        net.layer(f"{name}_relu", "ReLU", x, top=x)
        if pooled:
            x = pool(net, pooled, x, "MAX", kernel=2, stride=2)
    fillers = dict(weight_filler=dict(type="xavier"), bias_filler=dict(type="constant"))
    x = net.layer("ip1", "InnerProduct", x, param=LEARN,
                  inner_product_param=dict(num_output=widths[3], **fillers))
    net.layer("relu_ip1", "ReLU", x, top=x)
    net.layer("drop1", "Dropout", x, top=x, dropout_param=dict(dropout_ratio=0.3))
    x = net.layer("ip2", "InnerProduct", x, param=LEARN, inner_product_param=fillers)
    accuracy_loss_softmax(net, x)
    path = out / "window_net.prototxt"
    path.write_text(text_format.MessageToString(net.proto))
    return path


def run(*args: str) -> None:
    print("$", " ".join(args), flush=True)
    subprocess.run([sys.executable, *args], cwd=REPO, check=True)


def one_round(out: Path, mnist_dir: Path, args, weights: str | None, mine: Path | None,
              seed: int) -> Path:
    """Steps 1-4 into `out`; returns the job folder (model.onnx and its last snapshot)."""
    out.mkdir(parents=True, exist_ok=True)
    images = out / "images"
    if images.exists():
        shutil.rmtree(images)
    print(f"== 1. images in {out} (MNIST train digits and windows of composed strings)", flush=True)
    counts = build_images(images, mnist_dir, args.per_class, args.strings, seed, mine,
                          augment=not args.no_augment, workers=args.workers,
                          context=args.context, right_per_digit=args.right_per_digit)
    print(f"  {counts}", flush=True)
    print("== 2. dataset (lmdb_builder folder)", flush=True)
    run("-m", "lmdb_builder", "folder", str(images), "--out", str(out / "data"), "--image-size", "28",
        "--channels", "3" if args.context else "1", "--val-percent", "10", "--seed", str(seed), "--force")
    print("== 3. model job (the window net)", flush=True)
    network = window_net(out, args.widths)
    job = out / "job"
    run("-m", "trainer", "new", "--dataset", str(out / "data"), "--network", str(network),
        "--out", str(job), "--epochs", str(args.epochs), "--lr", str(args.lr), "--seed", "1",
        "--force")
    print("== 4. training and ONNX export", flush=True)
    extra = (["--weights", str(Path(weights).resolve())] if weights else []) + \
        (["--fast"] if args.fast else [])
    run("-m", "trainer", "run", str(job / "solver.prototxt"), "--no-progress", *extra)
    run("-m", "converter", "onnx", "--job", str(job), "--out", str(job / "model.onnx"))
    print(f"wrote {job / 'model.onnx'}", flush=True)
    return job


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "string-model")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--weights", help="a previous window model to start from: its "
                        ".caffemodel, or its job folder (the last snapshot)")
    parser.add_argument("--widths", type=lambda text: tuple(int(w) for w in text.split(",")),
                        default=(32, 64, 64, 256), metavar="C1,C2,C3,FC",
                        help="the window net's conv1-3 channels and fc width (default 32,64,64,256)")
    parser.add_argument("--lr", type=float, default=0.05, help="base learning rate (default 0.05)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="processes composing strings (default: one a core)")
    parser.add_argument("--context", action="store_true",
                        help="a colour model that sees each window with its surroundings "
                             "(reader.span_field)")
    parser.add_argument("--no-augment", action="store_true",
                        help="no distorted copies of the training digits")
    parser.add_argument("--right-per-digit", type=int, default=RIGHT_PER_DIGIT,
                        help="right windows kept per digit of a string (default 2)")
    parser.add_argument("--per-class", type=int, default=3000, help="MNIST training digits per class")
    parser.add_argument("--strings", type=int, default=5000, help="composed strings for windows")
    parser.add_argument("--seed", type=int, default=15, help="of the first round (+1 a round)")
    parser.add_argument("--fast", action="store_true", help="trainer run --fast (bf16)")
    parser.add_argument("--mine", type=Path, metavar="MODEL.onnx",
                        help="a previous round's model: half the wrong windows are its hardest")
    parser.add_argument("--rounds", type=int, default=1,
                        help="rounds in <out>/round-K, each mining with and starting from the "
                             "previous round's model (default 1)")
    args = parser.parse_args()
    mnist_dir = Path(os.environ.get("REDIGITS_MNIST_DIR", REPO.parent / "shared" / "data" / "mnist"))
    out = args.out.resolve()
    if args.weights and Path(args.weights).is_dir():
        args.weights = str(find_job(args.weights).weights)
    if args.rounds <= 1:
        one_round(out, mnist_dir, args, args.weights, args.mine, args.seed)
        return 0
    weights, mine = args.weights, args.mine
    for k in range(1, args.rounds + 1):
        job = one_round(out / f"round-{k}", mnist_dir, args, weights, mine, args.seed + k - 1)
        weights, mine = str(find_job(job).weights), job / "model.onnx"
    print(f"the last round's model: {mine}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
