"""Classifier latency and throughput: LeNet (28x28x1) and GoogLeNet (256 -> 224, x3) exported to
ONNX, on CPU and on every GPU provider that works here.

    python benchmarks/inference_latency.py [--seconds 3] [--batches 1 64] [--threads N]

Both networks come from DIGITS' standard prototxts split for a 10-class dataset (LeNet 28x28
grayscale, GoogLeNet 256x256 colour with DIGITS' 224 crop), seeded random weights (timing does
not depend on the values), exported with converter.export_onnx and loaded by
inference.Classifier. Per model and provider: network-only latency p50/p99 at each batch size
and throughput in images/s, plus DIGITS' Classify One preprocessing per image (PNG decode,
resize, mean) for scale. Prints a markdown table; writes benchmarks/results/inference_latency.json
with the machine (CPU model, cores, date).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from converter import build_model  # noqa: E402
from converter.onnx_export import export_onnx  # noqa: E402
from inference import Classifier  # noqa: E402
from inference.bench import bench  # noqa: E402
from inference.providers import gpu_present  # noqa: E402
from prototxt import DatasetFacts, build_network, digits_split  # noqa: E402
from trainer.device import machine_description  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
MODELS = {"LeNet": ("lenet", (28, 28, 1)), "GoogLeNet": ("googlenet", (256, 256, 3))}


def machine() -> dict:
    """The machine (trainer.device's description), library versions, load and date."""
    import onnxruntime
    return {**machine_description(), "gpu_device_node": gpu_present(),
            "load_average_1min": round(os.getloadavg()[0], 2),
            "onnxruntime": onnxruntime.__version__,
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def write_results(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def export_standard(name: str, dims: tuple[int, int, int], folder: Path) -> Path:
    """DIGITS' standard network `name` for a 10-class dataset of H x W x C, random weights."""
    height, width, channels = dims
    split = digits_split(build_network(name), DatasetFacts(10, height, width, channels, str(folder)))
    model = build_model(split.deploy, "TEST", seed=0, source=f"<{name} deploy>").eval()
    meta = {"labels": json.dumps([str(i) for i in range(10)]), "resize_mode": "squash",
            "dataset_image_size": f"{height}x{width}x{channels}", "mean_type": "pixel",
            "mean_pixel": json.dumps([128.0] * channels), "scale": "1.0"}
    return export_onnx(model, folder / f"{name}.onnx", meta).path


def preprocess_ms(classifier: Classifier, dims: tuple[int, int, int], repeat: int = 50) -> float:
    """Median ms of DIGITS' preprocessing of one PNG at the dataset size."""
    height, width, channels = dims
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (height, width, channels) if channels == 3 else (height, width),
                          dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    data = buffer.getvalue()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        classifier.preprocess(data)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per cell (default 3)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (default: all)")
    args = parser.parse_args(argv)

    providers = ["cpu"] + (["cuda", "tensorrt"] if gpu_present() else [])
    rows, skipped = [], {}
    with tempfile.TemporaryDirectory(prefix="inference-bench-") as tmp:
        for label, (network, dims) in MODELS.items():
            path = export_standard(network, dims, Path(tmp))
            for provider in providers:
                try:
                    clf = Classifier(path, provider, max_batch=max(args.batches),
                                     threads=args.threads or None)
                except Exception as exc:  # a GPU provider that does not work here
                    skipped[f"{label} {provider}"] = str(exc).splitlines()[0][:200]
                    continue
                prep = preprocess_ms(clf, dims)
                for r in bench(clf, args.batches, args.seconds):
                    rows.append({"model": label, "input": "x".join(map(str, clf.info.input_shape)),
                                 "provider": provider, **r.as_dict(),
                                 "preprocess_ms_per_image": round(prep, 3)})
                print(f"  {label} on {provider} done", file=sys.stderr, flush=True)

    print("| model | provider | batch | p50 ms | p99 ms | images/s | preprocess ms/image |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} {r['input']} | {r['provider']} | {r['batch']} | {r['p50_ms']:.3f} | "
              f"{r['p99_ms']:.3f} | {r['images_per_s']:.0f} | {r['preprocess_ms_per_image']:.2f} |")
    for what, why in skipped.items():
        print(f"(skipped {what}: {why})")
    info = machine()
    print(f"\n{info['cpu']}, {info['logical_cores']} cores, load {info['load_average_1min']}, "
          f"onnxruntime {info['onnxruntime']}, {info['date']}; {args.seconds:g} s per cell; "
          "network only except the last column")
    out = write_results("inference_latency", {"machine": info, "seconds_per_cell": args.seconds,
                                              "rows": rows, "skipped": skipped})
    print(f"wrote {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
