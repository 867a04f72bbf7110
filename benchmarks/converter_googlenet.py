"""GoogLeNet deploy latency: PyTorch eager vs ONNX Runtime vs OpenCV dnn, in one run.

    python benchmarks/converter_googlenet.py [--model deploy.prototxt --weights x.caffemodel]
                                             [--batches 1 32] [--repeat 20] [--threads N]

Without --model it uses the seed DIGITS job's deploy.prototxt (../shared/reference/seed-job,
or $REDIGITS_REFERENCE_DIR) with seeded random weights. The ONNX file comes from
converter.export_onnx (its self-check runs too); OpenCV reads the prototxt and a caffemodel
saved by converter.save_caffemodel. Each cell is the median of --repeat timed runs after
warm-up. The issue's goal: ONNX Runtime batch-1 latency at most 0.75x OpenCV dnn's; on a CUDA
machine also ONNX Runtime CUDA batch-1 under 1 ms (printed when the CUDA provider works).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from converter import build_model  # noqa: E402
from converter.caffemodel import load_caffemodel, save_caffemodel  # noqa: E402
from converter.onnx_export import export_onnx  # noqa: E402


def median_ms(fn, repeat: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def sessions(onnx_path: Path, threads: int, spin: bool):
    import onnxruntime as ort
    ort.set_default_logger_severity(4)
    found = {}
    for label, providers in (("ONNX Runtime CPU", ["CPUExecutionProvider"]),
                             ("ONNX Runtime CUDA", ["CUDAExecutionProvider"])):
        if providers[0] not in ort.get_available_providers():
            continue
        if label.endswith("CUDA") and not Path("/dev/nvidia0").exists():
            continue  # onnxruntime-gpu lists CUDA even where no GPU is
        options = ort.SessionOptions()
        options.log_severity_level = 3
        # Spinning worker threads help on an idle machine and hurt badly on a busy one.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0" if spin else "1")
        if threads:
            options.intra_op_num_threads = threads
        try:
            session = ort.InferenceSession(str(onnx_path), options, providers=providers)
        except Exception as exc:  # a CUDA provider without a usable GPU
            print(f"({label} unavailable: {str(exc).splitlines()[0]})")
            continue
        if session.get_providers()[0] == providers[0]:
            found[label] = session
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    reference = Path(os.environ.get("REDIGITS_REFERENCE_DIR", REPO.parent / "shared" / "reference"))
    parser.add_argument("--model", default=str(reference / "seed-job" / "deploy.prototxt"))
    parser.add_argument("--weights", help="a .caffemodel (default: seeded random weights)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (default: all)")
    parser.add_argument("--spin", action="store_true", help="let ONNX Runtime's threads spin")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    import cv2
    if args.threads:
        cv2.setNumThreads(args.threads)

    model = build_model(args.model, seed=0).eval()
    if args.weights:
        load_caffemodel(model, args.weights, strict=True)
    (name,) = model.input_names
    shape = model.input_shapes[name]
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "w.caffemodel"
        save_caffemodel(model, weights)
        report = export_onnx(model, Path(tmp) / "m.onnx")
        engines = {"PyTorch eager": None, **sessions(report.path, args.threads, args.spin)}
        net = cv2.dnn.readNetFromCaffe(args.model, str(weights))
        net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
        output = report.output_name
        rows = []
        for batch in args.batches:
            x = np.random.default_rng(batch).normal(0, 50, (batch, *shape[1:])).astype(np.float32)
            xt = torch.from_numpy(x)
            results = {}
            with torch.inference_mode():
                results["PyTorch eager"] = median_ms(lambda: model(xt), args.repeat)
            for label, session in engines.items():
                if session is not None:
                    results[label] = median_ms(lambda: session.run([output], {name: x}), args.repeat)

            def opencv():
                net.setInput(x)
                net.forward(output)
            results["OpenCV dnn"] = median_ms(opencv, args.repeat)
            for label, ms in results.items():
                rows.append((label, batch, ms, ms / batch, ms / results["OpenCV dnn"]))
    threads = args.threads or torch.get_num_threads()
    print(f"\nGoogLeNet deploy {'x'.join(map(str, shape[1:]))}, {args.repeat} runs per cell "
          f"(median), CPU threads {threads}; ONNX self-check max abs diff "
          f"{max(report.differences.values()):.1e}")
    print(f"{'engine':<18} {'batch':>5} {'ms/batch':>10} {'ms/image':>9} {'vs OpenCV':>10}")
    for label, batch, ms, per_image, ratio in rows:
        print(f"{label:<18} {batch:>5} {ms:>10.2f} {per_image:>9.2f} {ratio:>9.2f}x")
    one = {label: ratio for label, batch, _, _, ratio in rows if batch == 1}
    if "ONNX Runtime CPU" in one:
        verdict = "met" if one["ONNX Runtime CPU"] <= 0.75 else "NOT met"
        print(f"goal ONNX Runtime CPU batch 1 <= 0.75x OpenCV dnn: {verdict} "
              f"({one['ONNX Runtime CPU']:.2f}x)")
    cuda = [ms for label, batch, ms, _, _ in rows if label == "ONNX Runtime CUDA" and batch == 1]
    if cuda:
        print(f"goal ONNX Runtime CUDA batch 1 < 1 ms: {'met' if cuda[0] < 1 else 'NOT met'} "
              f"({cuda[0]:.2f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
