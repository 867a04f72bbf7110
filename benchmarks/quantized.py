"""int8 vs fp32 on the CPU: GoogLeNet and LeNet latency, and LeNet's top-1 loss on MNIST's test set.

    python benchmarks/quantized.py --lenet model.onnx --calibrate DATASET_DIR|LMDB
                                   [--batches 1 32] [--repeat 30] [--threads N] [--json OUT]

Both int8 models are made by converter.quantize (static QDQ, ONNX Runtime's quantizer,
per-channel weights, Softmax in float) exactly as `converter onnx --int8` makes them.

* GoogLeNet: the seed DIGITS job's deploy.prototxt ($REDIGITS_REFERENCE_DIR/seed-job) with
  seeded **random** weights, calibrated on 32 seeded random images (N(0, 50) per pixel): enough
  for timing, which does not depend on the weights' values; its accuracy means nothing.
* LeNet: the trained `--lenet` model (e.g. `bash scripts/main_job.sh`'s export), calibrated on
  `--calibrate` (500 records spread over that LMDB: use the *train* db, so that nothing of the
  test set is seen), then both models classify MNIST's 10,000 test digits
  ($REDIGITS_MNIST_DIR, stored black on white as DIGITS' dataset does) fed as the metadata says.

Latency: ms per batch, the median of at least --repeat runs and --seconds after 3 warm-up
runs, fp32 and int8 alternating run by run so that the machine's other work weighs on both
alike. Goal (issue 12): int8 >= 2x faster than fp32 at <= 0.2 % top-1 loss. VNNI
(avx512_vnni / avx_vnni) decides how fast int8 convolutions are on x86; the CPU flags are
printed and saved with the figures.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from converter import build_model  # noqa: E402
from converter.calibration import CaffeTransform, load_calibration  # noqa: E402
from benchmarks.machine import cpu_flags  # noqa: E402
from converter.onnx_export import export_onnx  # noqa: E402
from converter.quantize import metadata_of, quantize_int8  # noqa: E402


def cpu_name() -> str:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    found = re.search(r"model name\s*:\s*(.+)", text)
    return found.group(1).strip() if found else platform.machine()


def session(data: bytes, threads: int):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def paired_ms(fp32, int8, x: np.ndarray, repeat: int,
              seconds: float = 3.0) -> tuple[float, float, int]:
    """Median ms per run of each session on `x`, and the runs of each: the two alternate for at
    least `repeat` pairs and `seconds` (a LeNet run takes 0.1 ms: hundreds outlast the noise)."""
    name = fp32.get_inputs()[0].name
    times: dict[str, list[float]] = {"fp32": [], "int8": []}
    for _ in range(3):
        fp32.run(None, {name: x})
        int8.run(None, {name: x})
    end = time.perf_counter() + seconds
    while len(times["fp32"]) < repeat or time.perf_counter() < end:
        for label, sess in (("fp32", fp32), ("int8", int8)):
            start = time.perf_counter()
            sess.run(None, {name: x})
            times[label].append(1000 * (time.perf_counter() - start))
    return statistics.median(times["fp32"]), statistics.median(times["int8"]), len(times["fp32"])


def googlenet(tmp: Path, reference: Path) -> tuple[bytes, bytes, tuple[int, ...]]:
    model = build_model(reference / "seed-job" / "deploy.prototxt", seed=0).eval()
    (name,) = model.input_names
    shape = model.input_shapes[name]
    fp32 = export_onnx(model, tmp / "googlenet.onnx").path.read_bytes()
    calibration = np.random.default_rng(0).normal(0, 50, (32, *shape[1:])).astype(np.float32)
    return fp32, quantize_int8(fp32, calibration), tuple(shape[1:])


def mnist_test(transform: CaffeTransform, mnist_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """MNIST's 10,000 test digits as the LeNet dataset stored them (inverted), preprocessed."""
    from lmdb_builder import load_mnist
    mnist = load_mnist(mnist_dir)
    images = np.stack([transform(image[None]) for image in mnist.test_images])
    return images, np.asarray(mnist.test_labels, np.int64)


def top1(sess, images: np.ndarray, batch: int = 500) -> np.ndarray:
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: images[i:i + batch]})[0].argmax(1)
                           for i in range(0, len(images), batch)])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lenet", required=True, help="a trained LeNet .onnx (converter onnx)")
    parser.add_argument("--calibrate", required=True, help="dataset folder (val_db) or an LMDB "
                        "folder for LeNet's calibration, e.g. the dataset's train_db")
    parser.add_argument("--calibration-images", type=int, default=500)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--repeat", type=int, default=30, help="at least this many runs a cell")
    parser.add_argument("--seconds", type=float, default=3.0, help="and at least this long")
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (default: all)")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args(argv)
    reference = Path(os.environ.get("REDIGITS_REFERENCE_DIR", REPO.parent / "shared" / "reference"))
    mnist_dir = Path(os.environ.get("REDIGITS_MNIST_DIR", REPO.parent / "shared" / "data" / "mnist"))
    started = time.time()

    import onnx
    lenet32 = Path(args.lenet).read_bytes()
    transform = CaffeTransform.from_metadata(metadata_of(onnx.load_from_string(lenet32)), args.lenet)
    calibration = load_calibration(args.calibrate, transform, args.calibration_images)
    lenet8 = quantize_int8(lenet32, calibration.images)
    with tempfile.TemporaryDirectory() as tmp:
        g32, g8, gshape = googlenet(Path(tmp), reference)
    models = {"GoogLeNet (random weights)": (g32, g8, gshape),
              "LeNet (trained)": (lenet32, lenet8,
                                  (transform.channels, transform.height, transform.width))}
    rows = []
    for label, (fp32, int8, shape) in models.items():
        s32, s8 = session(fp32, args.threads), session(int8, args.threads)
        for batch in args.batches:
            x = np.random.default_rng(batch).normal(0, 50, (batch, *shape)).astype(np.float32)
            ms32, ms8, runs = paired_ms(s32, s8, x, args.repeat, args.seconds)
            rows.append({"model": label, "input": "x".join(map(str, shape)), "batch": batch,
                         "runs": runs, "fp32_ms": ms32, "int8_ms": ms8, "speedup": ms32 / ms8,
                         "fp32_MB": len(fp32) / 1e6, "int8_MB": len(int8) / 1e6})

    images, labels = mnist_test(transform, mnist_dir)
    p32, p8 = top1(session(lenet32, args.threads), images), top1(session(lenet8, args.threads), images)
    acc32, acc8 = float((p32 == labels).mean()), float((p8 == labels).mean())
    accuracy = {"images": len(labels), "fp32_top1": acc32, "int8_top1": acc8,
                "top1_loss_points": 100 * (acc32 - acc8), "agreement": float((p32 == p8).mean()),
                "calibration": calibration.describe()}

    print(f"\nint8 (static QDQ, per-channel) vs fp32 on ONNX Runtime CPU, median of >= {args.repeat} "
          f"alternating runs and {args.seconds:g} s a cell; CPU flags: {' '.join(cpu_flags()) or 'none found'}")
    print(f"{'model':<28} {'input':>9} {'batch':>5} {'fp32 ms':>9} {'int8 ms':>9} {'speed-up':>9} {'runs':>5}")
    for r in rows:
        print(f"{r['model']:<28} {r['input']:>9} {r['batch']:>5} {r['fp32_ms']:>9.3f} "
              f"{r['int8_ms']:>9.3f} {r['speedup']:>8.2f}x {r['runs']:>5}")
    print(f"LeNet on MNIST's {accuracy['images']} test digits: top-1 fp32 {100 * acc32:.2f} %, "
          f"int8 {100 * acc8:.2f} %, loss {accuracy['top1_loss_points']:.2f} points, agreement "
          f"{100 * accuracy['agreement']:.2f} % (calibrated on {calibration.describe()})")
    slowest = min(r["speedup"] for r in rows)
    met = slowest >= 2 and accuracy["top1_loss_points"] <= 0.2
    print(f"goal int8 >= 2x faster than fp32 at <= 0.2 % top-1 loss: {'met' if met else 'NOT met'} "
          f"(speed-up {slowest:.2f}x to {max(r['speedup'] for r in rows):.2f}x, loss "
          f"{accuracy['top1_loss_points']:.2f} points)")
    if args.json:
        import onnxruntime
        result = {"machine": {"cpu": cpu_name(),
                              "cores": os.cpu_count(), "cpu_flags": cpu_flags(),
                              "load_average_1min": os.getloadavg()[0],
                              "python": platform.python_version(),
                              "onnxruntime": onnxruntime.__version__,
                              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
                                  timespec="seconds")},
                  "repeat": args.repeat, "seconds_per_cell": args.seconds, "threads": args.threads or os.cpu_count(),
                  "rows": rows, "lenet_mnist_test": accuracy,
                  "wall_seconds": round(time.time() - started, 1)}
        from prototxt import atomic_write
        atomic_write(args.json, (json.dumps(result, indent=2) + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
