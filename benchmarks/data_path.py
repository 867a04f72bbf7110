"""The training data path alone, in the seed job's configuration: 256x256x3 PNG records, random
224 crops, mirror, mean image, batch 32 (what trainer run feeds GoogLeNet).

    python benchmarks/data_path.py [--dataset DIR | --images N] [--workers 1,2] [--seconds 5]
                                   [--device cpu|cuda] [--json]

Measures, on this machine:
- per worker: `BatchMaker.raw` in this process (decode, draw, cut the uint8 windows), images/s;
- the NumPy float reference (`BatchMaker.__call__`, what the data path did before), images/s;
- `Batches.stream` with N worker processes through shared memory, finished on --device,
  images/s and the speed-up per worker.
Without --dataset it builds N MNIST images (REDIGITS_MNIST_DIR or ../shared/data/mnist) into a
temporary 256x256x3 dataset first.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from prototxt import caffe_pb2, parse_text  # noqa: E402
from trainer.data import BatchMaker, Batches, source_spec  # noqa: E402
from trainer.device import machine_description  # noqa: E402

BATCH, CROP = 32, 224


def build(images: int, folder: Path) -> Path:
    mnist = os.environ.get("REDIGITS_MNIST_DIR") or str(REPO.parent / "shared" / "data" / "mnist")
    subprocess.run([sys.executable, "-m", "lmdb_builder", "mnist", "--out", str(folder),
                    "--image-size", "256", "--channels", "3", "--limit", str(images),
                    "--mnist-dir", mnist, "--force"], check=True, cwd=REPO,
                   stdout=subprocess.DEVNULL)
    return folder


def seed_layer(dataset: Path) -> caffe_pb2.LayerParameter:
    return parse_text(f'''name: "train-data" type: "Data" top: "data" top: "label"
        transform_param {{ crop_size: {CROP} mirror: true
                           mean_file: "{dataset / 'mean.binaryproto'}" }}
        data_param {{ source: "{dataset / 'train_db'}" batch_size: {BATCH} backend: LMDB }}''',
                      caffe_pb2.LayerParameter())


def rate(fn, seconds: float) -> float:
    """Images per second of fn(k) (one batch each), k = 0, 1, ... for about `seconds`."""
    fn(0)  # warm: LMDB pages, decoder
    start, k = time.perf_counter(), 1
    while time.perf_counter() - start < seconds:
        fn(k)
        k += 1
    return (k - 1) * BATCH / (time.perf_counter() - start)


def stream_rate(spec, workers: int, seconds: float, device: str) -> float:
    batches = Batches([spec], workers=workers, depth=2 * workers + 2, device=device)
    try:
        stream = batches.stream(0, 0)
        for _ in range(2 * workers + 2):  # the pool starts and fills its queue
            next(stream)
        start, n = time.perf_counter(), 0
        while time.perf_counter() - start < seconds:
            x, _ = next(stream)
            n += 1
        if x.is_cuda:
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        stream.close()
        return n * BATCH / elapsed
    finally:
        batches.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, help="a 256x256x3 dataset folder (train_db, mean)")
    parser.add_argument("--images", type=int, default=800, help="images to build without --dataset")
    parser.add_argument("--workers", default="1,2", help="worker counts, e.g. 1,2,8")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        dataset = args.dataset or build(args.images, Path(tmp) / "mnist256")
        spec = source_spec(seed_layer(dataset), caffe_pb2.TRAIN, 1, "benchmark")
        maker = BatchMaker(spec)
        out = np.empty(maker.batch_shape, np.uint8)
        rows = {
            "raw_per_worker": rate(lambda k: maker.raw(k, out), args.seconds),
            "numpy_reference": rate(maker, args.seconds),
        }
        streams = {}
        for n in (int(w) for w in args.workers.split(",")):
            streams[n] = stream_rate(spec, n, args.seconds, args.device)
    result = {"machine": machine_description(), "device": args.device, "batch": BATCH,
              "crop": CROP, "images_per_s": rows,
              "stream_images_per_s": {str(n): v for n, v in streams.items()}}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    m = result["machine"]
    print(f"{m['cpu']} ({m['cpu_capability']}), {m['usable_cores']} cores, device {args.device}")
    print(f"per worker, uint8 windows (decode + draw + cut): {rows['raw_per_worker']:8.0f} images/s")
    print(f"per worker, NumPy float reference:               {rows['numpy_reference']:8.0f} images/s")
    for n, v in streams.items():
        print(f"stream, {n:2d} worker(s) -> {args.device}:                 {v:8.0f} images/s "
              f"({v / n:.0f} per worker)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
