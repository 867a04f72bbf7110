"""Reading strings and tables of handwritten digits: exact-string accuracy and character error
rate per kind, with the single-digit model's own accuracy beside it.

    python benchmarks/digit_strings.py MODEL.onnx [MODEL2.onnx ...] [--count 200] [--tables 40] [--seed 2026]
        [--kinds separated,touching] [--out benchmarks/results/digit_strings.json]

Strings of 3-8 digits (length uniform) are composed only from MNIST's *test* digits (never
trained on) by inference/read/compose.py in four kinds, separated, touching, overlapping and
slanted, plus small tables (3-5 rows x 2-4 columns of 1-4-digit numbers; a table is exact when
every cell is). CER = edit distance / characters of the truth. Beside them: the model's
single-digit accuracy on all 10,000 test digits as stored (DIGITS' Classify Many; none for a
model that sees windows in context, whose input is the reader's RGB field) and through
the reader's drawing normalization (for a model with a "none" class: its best digit class, as
the reader takes it), how it reads (by windows if it has a "none" class, else by pieces:
inference/read/reader.py), and p^L, what an ideal segmenter would reach with that
per-digit accuracy p for the same lengths. The reader's constants were tuned on seeds other
than the default seed here. Writes benchmarks/results/digit_strings.json (one run per model,
on the same strings) and pictures of up to 8 failures per kind of the first model,
digit_strings_failures.png (truth above, reading below each).
REDIGITS_MNIST_DIR names the MNIST folder (default ../shared/data/mnist).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from inference import Classifier  # noqa: E402
from inference.read import read_digits  # noqa: E402
from inference.read.compose import KINDS, compose_string, compose_table, edit_distance  # noqa: E402
from inference.read.reader import NONE_LABEL  # noqa: E402
from lmdb_builder import load_mnist  # noqa: E402
from trainer.device import machine_description  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"


def single_digit_accuracy(clf: Classifier, images: np.ndarray, labels: np.ndarray,
                          drawing: bool) -> tuple[float, float]:
    """(accuracy of the best *digit* class, as the reader takes it; share of digits whose top
    class is "none", 0 for a 10-class model)."""
    right = none = 0
    for start in range(0, len(images), 500):
        batch = [Image.fromarray(im) for im in images[start:start + 500]]
        got = clf.classify(batch, top=2, drawing=drawing)
        for p, y in zip(got, labels[start:start + 500]):
            digits = [q for q in p if q.label != NONE_LABEL]
            right += int(digits[0].label) == int(y)
            none += p[0].label == NONE_LABEL
    return right / len(images), none / len(images)


def save_atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write(tmp)
    os.replace(tmp, path)


def failure_sheet(failures: dict[str, list]) -> Image.Image:
    rows = [(kind, img, truth, got) for kind, items in failures.items() for img, truth, got in items]
    width = max([img.width for _, img, _, _ in rows] + [200]) + 120
    heights = [img.height + 30 for _, img, _, _ in rows]
    sheet = Image.new("L", (width, max(1, sum(heights))), 255)
    draw = ImageDraw.Draw(sheet)
    y = 0
    for (kind, img, truth, got), h in zip(rows, heights):
        draw.text((4, y + 2), kind, fill=0)
        sheet.paste(img, (116, y + 14))
        draw.text((116, y + 2), f"truth {truth.replace(chr(10), ' / ')}", fill=0)
        draw.text((116, y + 15 + img.height), f"read  {got.replace(chr(10), ' / ')}", fill=0)
        y += h
    return sheet


def measure(model: Path, args, raw, stored) -> tuple[dict, dict]:
    """One model's row per kind (and its failures): the same strings for every model."""
    images, labels = raw.test_images, raw.test_labels
    clf = Classifier(str(model), provider="cpu")
    # a model that sees windows in context reads RGB fields (reader.span_field), not the
    # dataset's grey digits: it has no "as stored" figure
    p_stored = None if clf.info.sees_context else \
        single_digit_accuracy(clf, stored.test_images, labels, drawing=False)[0]
    p_drawn, none_top = single_digit_accuracy(clf, stored.test_images, labels, drawing=True)
    rows, failures = {}, {}
    for number, kind in enumerate((*KINDS, "tables")):
        if kind not in args.kinds.split(","):
            continue
        rng = np.random.default_rng([args.seed, number])     # the same strings in any --kinds
        exact = errors = chars = 0
        lengths, seconds = [], 0.0
        failures[kind] = []
        count = args.tables if kind == "tables" else args.count
        for _ in range(count):
            if kind == "tables":
                idx = rng.integers(0, len(labels), 80)
                composed = compose_table(images[idx], labels[idx], rng)
            else:
                idx = rng.integers(0, len(labels), int(rng.integers(3, 9)))
                composed = compose_string(list(images[idx]), list(labels[idx]), kind, rng)
            start = time.perf_counter()
            reading = read_digits(clf, composed.image)
            seconds += time.perf_counter() - start
            if kind == "tables":
                got = "\n".join(" ".join(row) for row in reading.table())
                ok = reading.table() == composed.cells
                truth_chars, got_chars = composed.text.replace("\n", " "), got.replace("\n", " ")
            else:
                got = reading.text.replace(" ", "")
                ok = got == composed.text
                truth_chars, got_chars = composed.text, got
            lengths.append(len(composed.text.replace(" ", "").replace("\n", "")))
            exact += ok
            errors += edit_distance(truth_chars, got_chars)
            chars += len(truth_chars)
            if not ok and len(failures[kind]) < 8:
                failures[kind].append((composed.image, composed.text, got))
        ideal = float(np.mean([p_drawn ** n for n in lengths]))
        rows[kind] = {"count": count, "exact": exact / count, "cer": errors / chars,
                      "ideal_p_to_the_L": ideal, "mean_digits": float(np.mean(lengths)),
                      "ms_per_image": 1000 * seconds / count}

    reading = "windows" if NONE_LABEL in clf.labels else "pieces"
    as_stored = "n/a" if p_stored is None else f"{100 * p_stored:.2f} %"
    print(f"{model}: read by {reading}; single digits {as_stored} (as stored), "
          f"{100 * p_drawn:.2f} % (drawing normalization; 'none' on top for "
          f"{100 * none_top:.2f} %), MNIST test split, seed {args.seed}")
    print("| kind | images | digits/image | exact | CER | p^L (ideal cuts) | ms/image |")
    print("|---|---|---|---|---|---|---|")
    for kind, r in rows.items():
        print(f"| {kind} | {r['count']} | {r['mean_digits']:.1f} | {100 * r['exact']:.1f} % | "
              f"{100 * r['cer']:.2f} % | {100 * r['ideal_p_to_the_L']:.1f} % | {r['ms_per_image']:.0f} |",
              flush=True)
    return {"model": str(model), "reading": reading, "single_digit_accuracy": p_stored,
            "single_digit_accuracy_drawing": p_drawn, "classes": list(clf.labels),
            "none_on_top_of_test_digits": none_top, "kinds": rows}, failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", type=Path,
                        help="model.onnx of single-digit models (the failure picture: the first)")
    parser.add_argument("--count", type=int, default=200, help="strings per kind (default 200)")
    parser.add_argument("--tables", type=int, default=40, help="tables (default 40)")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--out", type=Path, default=RESULTS / "digit_strings.json")
    parser.add_argument("--kinds", default=",".join((*KINDS, "tables")),
                        help="comma-separated kinds to run (default: all)")
    args = parser.parse_args()

    mnist_dir = Path(os.environ.get("REDIGITS_MNIST_DIR", REPO.parent / "shared" / "data" / "mnist"))
    raw = load_mnist(mnist_dir, invert=False)
    stored = load_mnist(mnist_dir)                    # DIGITS' polarity, as the model was trained
    runs, first_failures = [], None
    for model in args.models:
        run, failures = measure(model, args, raw, stored)
        runs.append(run)
        first_failures = failures if first_failures is None else first_failures
    result = {"seed": args.seed, "machine": machine_description(), "runs": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_atomic(args.out, lambda p: p.write_text(json.dumps(result, indent=2) + "\n"))
    picture = args.out.with_name(args.out.stem + "_failures.png")
    save_atomic(picture, lambda p: failure_sheet(first_failures).save(p, format="PNG"))
    print(f"wrote {args.out} and {picture}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
