"""Fuzzing ONNX metadata (issue 14, tests to keep): seeded mutations of every metadata key the
converter writes, read by model_info (and a Preprocessor built from the result), and a few
through a model file and Classifier. Only InferenceError may escape, each case quickly and
without large allocations. Bounded to a few seconds."""
from __future__ import annotations

import base64
import json
import time
import tracemalloc

import numpy as np
import pytest

from inference import Classifier, InferenceError, Preprocessor, model_info

from .tiny_models import tiny_onnx

pytestmark = pytest.mark.slow

SEED = 4242
CASES = 3000
FILE_CASES = 20
BUDGET_S = 10.0


def sound_meta(rng) -> dict[str, str]:
    mean = rng.uniform(0, 255, (1, 28, 28)).astype("<f4")
    return {"labels": json.dumps([str(d) for d in range(10)]), "input_shape": "1x28x28",
            "channel_order": "GRAY", "resize_mode": "squash", "dataset_image_size": "28x28x1",
            "mean_type": "image", "mean_pixel": "[128.0]", "mean_shape": "1x28x28",
            "mean_data": base64.b64encode(mean.tobytes()).decode(), "scale": "1.0",
            "preprocessing": "subtract the mean image"}


NASTY = ["", "nan", "-inf", "1e999", "-1", "0", "0x0x0", "99999x99999x3", "60000x60000x1",
         "1x28x28x1", "[", "[[[]]]", "[" * 3000 + "]" * 3000, "{}", "null", "true", '"x"',
         "[1, [2]]", '["a", null]', "[1e999]", "[NaN]", json.dumps(list(range(200_000))),
         json.dumps(["x" * 5000]), "\x00\xff", "é" * 10, "1" * 5000, "3x4096x4096",
         base64.b64encode(b"\0\0\xc0\x7f" * 784).decode(), "!!!not base64!!!", "AAAA" * 3]


def pick(rng, options: list):
    return options[int(rng.integers(len(options)))]


def mutate(meta: dict[str, str], rng) -> dict[str, str]:
    meta = dict(meta)
    for _ in range(int(rng.integers(1, 4))):
        key = pick(rng, list(meta) + ["mean_type", "resize_mode", "extra_key"])
        kind = int(rng.integers(0, 4))
        if kind == 0:
            meta[key] = pick(rng, NASTY)
        elif kind == 1 and key in meta:
            value = meta[key]
            at = int(rng.integers(0, len(value) + 1))
            meta[key] = value[:at] + pick(rng, ["[", "]", "x", "9", ",", "\"", "-", "."]) + value[at:]
        elif kind == 2:
            meta.pop(key, None)
        else:
            meta[key] = pick(rng, ["image", "pixel", "none", "median", "crop", "fill",
                                   "half_crop", "squash", "stretch"])
    return meta


def test_model_info_raises_only_inference_errors():
    rng = np.random.default_rng(SEED)
    base = sound_meta(rng)
    Preprocessor(model_info(base, "data", ("N", 1, 28, 28), "prob", where="m.onnx"))
    deadline = time.monotonic() + BUDGET_S
    cases = refused = 0
    tracemalloc.start()
    try:
        for case in range(CASES):
            if time.monotonic() > deadline:
                break
            meta = mutate(base, rng)
            shapes = [(1, 28, 28)] * 6 + [(3, 32, 32), (1, 5000, 28), (4, 8, 8)]
            shape = ("N", *shapes[int(rng.integers(len(shapes)))])
            start = time.process_time()     # CPU time: a loaded machine must not fail it
            tracemalloc.reset_peak()
            try:
                Preprocessor(model_info(meta, "data", shape, "prob", where="m.onnx"))
            except InferenceError as exc:
                refused += 1
                assert str(exc).startswith("m.onnx: ") and len(str(exc)) < 2000, f"case {case}: {exc}"
            except Exception as exc:  # noqa: BLE001 - the point of the test
                pytest.fail(f"case {case} (seed {SEED}): {type(exc).__name__}: {str(exc)[:300]}"
                            f" for {{{', '.join(f'{k}: {v[:40]!r}' for k, v in meta.items())}}}")
            assert time.process_time() - start < 2, f"case {case} took too long"
            assert tracemalloc.get_traced_memory()[1] < 256 * 2**20, f"case {case} allocated a lot"
            cases += 1
    finally:
        tracemalloc.stop()
    assert cases >= 500 and refused >= cases // 4


def test_crafted_model_files_raise_only_inference_errors(tmp_path):
    rng = np.random.default_rng(SEED + 1)
    base = sound_meta(rng)
    for case in range(FILE_CASES):
        path = tiny_onnx(tmp_path / f"m{case}.onnx", mutate(base, rng))
        try:
            Classifier(path, provider="cpu")
        except InferenceError as exc:
            assert str(exc).startswith(f"{path}: "), f"case {case}: {exc}"
        except Exception as exc:  # noqa: BLE001
            pytest.fail(f"case {case} (seed {SEED + 1}): {type(exc).__name__}: {str(exc)[:300]}")
