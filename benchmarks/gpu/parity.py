"""ONNX Runtime on a GPU provider against the CPU provider, on the same inputs.

    python benchmarks/gpu/parity.py MODEL.onnx [--dataset DATASET_DIR] [--count 64] \
        [--provider cuda] [--seed 0] [--batch 64] [--tolerance 1e-4] [--json]

Two sets of `count` inputs, both seeded:
  val     validation images of the dataset (DATASET_DIR/val_db, records drawn without
          replacement), through inference.Classifier's own preprocessing (DIGITS' Classify One);
  random  normal(0, 50) arrays of the model's input shape, as `inference bench` uses.
For each: the largest absolute difference of the output probabilities, the relative L2
difference ||gpu - cpu|| / ||cpu|| and the share of equal top-1 classes. "ok" when the max abs
difference is within --tolerance on every set.

Prints JSON with "status": "ok", "above_tolerance", or "skipped" (the provider does not run
here, with ONNX Runtime's reason). Exit status 0 for ok and skipped, 1 above tolerance, 2 on error.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from inference import Classifier, InferenceError  # noqa: E402


def val_images(dataset: Path, count: int, seed: int) -> tuple[list[np.ndarray], list[int]]:
    """`count` validation records (uint8 H x W or H x W x 3 RGB, as a caller hands images in)."""
    from lmdb_builder import DatumDB
    with DatumDB(dataset / "val_db") as db:
        n = len(db)
        picks = np.sort(np.random.default_rng(seed).choice(n, size=min(count, n), replace=False))
        images, labels = [], []
        for i in picks:
            chw, label = db[int(i)]          # C x H x W, BGR
            image = chw[0] if chw.shape[0] == 1 else chw[::-1].transpose(1, 2, 0)
            images.append(np.ascontiguousarray(image))
            labels.append(int(label))
    return images, labels


def compare(reference: np.ndarray, other: np.ndarray) -> dict:
    diff = other.astype(np.float64) - reference.astype(np.float64)
    norm = float(np.linalg.norm(reference.astype(np.float64)))
    return {"inputs": int(len(reference)),
            "max_abs": float(np.abs(diff).max()) if diff.size else 0.0,
            "rel_l2": float(np.linalg.norm(diff) / norm) if norm else 0.0,
            "top1_agree": float(np.mean(reference.argmax(1) == other.argmax(1))) if len(reference)
            else 1.0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--dataset", type=Path, help="dataset folder with val_db (else random only)")
    parser.add_argument("--count", type=int, default=64)
    parser.add_argument("--provider", default="cuda", choices=("cuda", "tensorrt", "cpu"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=64, help="images per ONNX Runtime run")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    out: dict = {"model": str(args.model), "provider": args.provider, "reference": "cpu",
                 "count": args.count, "seed": args.seed, "tolerance": args.tolerance}
    try:
        reference = Classifier(args.model, provider="cpu", max_batch=args.batch)
    except InferenceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    shape = reference.info.input_shape
    sets: dict[str, np.ndarray] = {}
    if args.dataset is not None and (args.dataset / "val_db").exists():
        images, labels = val_images(args.dataset, args.count, args.seed)
        sets["val"] = np.stack([reference.preprocess(image) for image in images])
        out["val_labels"] = labels
    sets["random"] = (np.random.default_rng(args.seed).normal(0, 50, (args.count, *shape))
                      .astype(np.float32))
    expected = {name: reference.probabilities(x) for name, x in sets.items()}
    if "val" in sets:
        out["cpu_val_accuracy"] = float(np.mean(expected["val"].argmax(1) == np.array(out["val_labels"])))
        del out["val_labels"]

    start = time.perf_counter()
    try:
        device = Classifier(args.model, provider=args.provider, max_batch=args.batch)
    except InferenceError as exc:
        out.update(status="skipped", reason=str(exc))
        print(json.dumps(out, indent=2) if args.json else f"skipped: {exc}")
        return 0
    out["session_s"] = time.perf_counter() - start
    out["sets"] = {name: compare(expected[name], device.probabilities(x)) for name, x in sets.items()}
    worst = max(s["max_abs"] for s in out["sets"].values())
    out["max_abs"] = worst
    out["rel_l2"] = max(s["rel_l2"] for s in out["sets"].values())
    out["status"] = "ok" if worst <= args.tolerance else "above_tolerance"
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for name, s in out["sets"].items():
            print(f"{name:6s} {s['inputs']:3d} inputs: max abs {s['max_abs']:.3g}, relative L2 "
                  f"{s['rel_l2']:.3g}, top-1 agree {s['top1_agree']:.0%}")
        print(f"{args.provider} vs cpu: {out['status']} (tolerance {args.tolerance:g})")
    return 0 if out["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
