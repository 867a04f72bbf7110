"""`python -m inference serve` under load: requests/s and latency p50/p99 at 1, 8 and 32
concurrent clients, with the batch sizes the dynamic batcher formed.

    python benchmarks/inference_server.py [--seconds 5] [--concurrency 1 8 32] [--max-batch 32]
                                          [--max-wait-ms 5] [--provider cpu]

The server runs in its own process (as deployed) with a LeNet exported from DIGITS' standard
prototxt (seeded random weights; timing does not depend on them). Each client is a thread with
one keep-alive connection posting the page's request: a 280x280 PNG canvas with a drawn digit
as multipart field `image`, so every request pays PNG decoding, the drawing normalization and
DIGITS' preprocessing as well as the network. The clients share the machine with the server:
on few cores they take part of the CPU. Prints a markdown table; writes
benchmarks/results/inference_server.json with the machine (CPU model, cores, date).
"""
from __future__ import annotations

import argparse
import http.client
import io
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent))
from inference_latency import REPO, export_standard, machine, write_results  # noqa: E402


def canvas_png() -> bytes:
    """A '7' drawn with the page's pen on its 280x280 white canvas."""
    image = Image.new("L", (280, 280), 255)
    ImageDraw.Draw(image).line([(80, 60), (200, 60), (120, 230)], fill=0, width=20, joint="curve")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def multipart(data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"c.png\"\r\n"
            "Content-Type: image/png\r\n\r\n").encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(port: int, path: str) -> dict:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        return json.loads(connection.getresponse().read())
    finally:
        connection.close()


def wait_ready(port: int, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            if get_json(port, "/healthz")["status"] == "ok":
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("the server did not answer /healthz")


def load(port: int, clients: int, seconds: float, body: bytes, content_type: str) -> dict:
    """`clients` threads posting for `seconds`; latencies in ms, errors counted."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine, bad = [], 0
        while time.monotonic() < stop:
            start = time.perf_counter()
            connection.request("POST", "/predict", body=body, headers={"Content-Type": content_type})
            response = connection.getresponse()
            response.read()
            mine.append((time.perf_counter() - start) * 1000)
            bad += response.status != 200
        connection.close()
        with lock:
            latencies.extend(mine)
            errors[0] += bad

    threads = [threading.Thread(target=client) for _ in range(clients)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - began
    ms = np.array(latencies)
    return {"requests": len(ms), "errors": errors[0], "requests_per_s": len(ms) / wall,
            "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per concurrency level")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--provider", choices=("cpu", "cuda", "tensorrt"),
                        help="default: the best that works")
    args = parser.parse_args(argv)

    body, content_type = multipart(canvas_png())
    rows = []
    with tempfile.TemporaryDirectory(prefix="inference-server-bench-") as tmp:
        model = export_standard("lenet", (28, 28, 1), Path(tmp))
        port = free_port()
        command = [sys.executable, "-m", "inference", "serve", str(model), "--port", str(port),
                   "--max-batch", str(args.max_batch), "--max-wait-ms", str(args.max_wait_ms)]
        if args.provider:
            command += ["--provider", args.provider]
        server = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL)
        try:
            wait_ready(port, server)
            provider = get_json(port, "/healthz")["provider"]
            load(port, 4, 1.0, body, content_type)                      # warm-up
            for clients in args.concurrency:
                before = get_json(port, "/healthz")
                row = load(port, clients, args.seconds, body, content_type)
                after = get_json(port, "/healthz")
                batches = after["batches"] - before["batches"]
                images = after["batched_images"] - before["batched_images"]
                rows.append({"concurrency": clients, **row,
                             "mean_batch": images / batches if batches else 0.0,
                             "max_batch_seen": after["max_batch_seen"]})
                print(f"  concurrency {clients} done", file=sys.stderr, flush=True)
        finally:
            server.terminate()
            server.wait(timeout=30)

    print("| clients | requests | errors | requests/s | p50 ms | p99 ms | mean batch |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['concurrency']} | {r['requests']} | {r['errors']} | {r['requests_per_s']:.0f} | "
              f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['mean_batch']:.1f} |")
    info = machine()
    print(f"\nLeNet 1x28x28 on {provider}, 280x280 PNG canvas per request, max batch "
          f"{args.max_batch}, max wait {args.max_wait_ms:g} ms; {info['cpu']}, {info['logical_cores']} "
          f"cores (clients included), load {info['load_average_1min']}, {info['date']}")
    out = write_results("inference_server", {
        "machine": info, "provider": provider, "seconds_per_level": args.seconds,
        "max_batch": args.max_batch, "max_wait_ms": args.max_wait_ms, "rows": rows})
    print(f"wrote {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
