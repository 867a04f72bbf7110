"""benchmarks/gpu/run.sh, the prepared GPU measurement, checked end to end on the CPU (--smoke:
LeNet on 300 MNIST images, 3 iterations, CPU benchmarks) and against its time budget."""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
STAGES = ["setup", "facts", "gpu_tests", "dataset", "job", "train", "onnx", "bench_cuda",
          "bench_cuda_graph", "bench_cpu", "parity", "bench_tensorrt", "bench_fp16", "ort_variants",
          "train_graphs", "train_fast", "train_recipe", "profile"]


def run_smoke(tmp_path: Path, mnist_dir: Path, *extra: str, timeout: float = 240):
    out = tmp_path / "out"
    env = dict(os.environ, PYTHON=sys.executable, REDIGITS_MNIST_DIR=str(mnist_dir),
               REDIGITS_SITE_DIR=str(tmp_path / "site"), REDIGITS_ORT_DIR=str(tmp_path / "ort"))
    env.pop("OUT", None)
    proc = subprocess.run(["bash", "benchmarks/gpu/run.sh", "--smoke", "--out", str(out),
                           "--work", str(tmp_path / "work"), *extra],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc, out, json.loads((out / "results.json").read_text())


def _run_object(tmp_path: Path, only: set[str], skip: set[str]):
    """run.py's Run for a full (not smoke) call, made without running anything."""
    from benchmarks.gpu.run import Run
    args = argparse.Namespace(smoke=False, budget=300.0, out=tmp_path / "out", work=tmp_path / "w",
                              network="googlenet", epochs=2, device=None, fast_graphs=True,
                              train_flags="", fast_flags="", recipe_flags=[], only=only, skip=skip,
                              bench_seconds=2.0)
    return Run(args)


def test_training_keeps_time_back_only_for_stages_asked_for(tmp_path):
    # the export and benchmarks after training need ~166 s: kept back when they will run
    assert _run_object(tmp_path, set(), set()).post_train_need() == 166.0
    assert _run_object(tmp_path, set(), {"gpu_tests"}).post_train_need() == 166.0
    # a call that only trains (--only ...,train,train_recipe or --skip onnx) gives it all to training
    assert _run_object(tmp_path, {"setup", "dataset", "job", "train", "train_recipe"},
                       set()).post_train_need() == 0.0
    assert _run_object(tmp_path, set(), {"onnx"}).post_train_need() == 0.0
    run = _run_object(tmp_path, {"train"}, set())
    assert run.wanted("train") and not run.wanted("onnx")


@pytest.mark.slow
def test_smoke_runs_every_stage(tmp_path, mnist_dir):
    proc, out, results = run_smoke(tmp_path, mnist_dir, "--fast-flags", "--cudnn-search get",
                                    "--recipe-flags", "--policy poly --power 0.5",
                                    "--recipe-flags", "--lr 0.02")
    stages = results["stages"]
    assert results["smoke"] is True and results["network"] == "lenet"
    assert list(stages) == STAGES[:-1] + ["train_recipe2", "profile"]   # one per recipe
    for name, stage in stages.items():
        assert stage["status"] in ("ok", "skipped"), (name, stage)

    dataset = stages["dataset"]
    assert dataset["status"] == "ok" and dataset["image_size"] == "28x28x1"
    assert dataset["records"]["train_db"] > 0 and dataset["records"]["val_db"] > 0
    assert dataset["total_records"] == 300 and dataset["images_per_s"] > 0

    train = stages["train"]
    assert train["status"] == "ok" and train["rc"] == 0 and train["device"] == "cpu"
    assert train["iterations_done"] == 3 and train["wall_s"] > 0 and train["images_per_s_wall"] > 0
    assert train["accuracy_output"] == "accuracy" and train["val_tests"]
    assert train["wait_data_ms"] >= 0 and train["wait_device_ms"] >= 0
    assert 0.0 <= train["final_val_accuracy"] <= 1.0
    assert (out / "metrics.csv").is_file() and (out / "training.png").is_file()

    assert stages["onnx"]["status"] == "ok" and stages["onnx"]["bytes"] > 0
    cpu = stages["bench_cpu"]
    assert cpu["status"] == "ok" and cpu["provider"] == "cpu"
    assert cpu["batch1_p50_ms"] > 0 and cpu["batch32_images_per_s"] > 0
    assert stages["bench_cuda"]["status"] == "skipped"          # smoke: CPU only
    assert stages["bench_cuda_graph"]["status"] == "skipped"
    assert stages["train_graphs"]["reason"] == "CUDA graphs need a CUDA device"
    parity = stages["parity"]
    if parity["status"] == "ok":                                  # a CUDA provider ran
        assert parity["max_abs"] <= 1e-4
    else:
        assert parity["status"] == "skipped" and "cuda" in parity["reason"]
    if stages["gpu_tests"]["status"] == "skipped":
        assert stages["gpu_tests"]["reason"] == "no CUDA"
    if stages["train_fast"]["status"] == "ok":
        assert stages["train_fast"]["fast"] is True and stages["train_fast"]["iterations_done"] == 3
        assert stages["train_fast"]["flags"] == "--cudnn-search get" and train["flags"] == ""
    recipe = stages["train_recipe"]
    assert recipe["status"] == "ok" and recipe["fast"] is True and recipe["iterations_done"] == 3
    assert recipe["job_flags"] == "--policy poly --power 0.5"
    solver = recipe["job"]
    assert (solver["lr_policy"], solver["power"], solver["base_lr"]) == ("poly", 0.5, 0.01)
    assert stages["job"]["lr_policy"] == "step" and stages["job"]["stepsize"] > 0   # the seed's
    second = stages["train_recipe2"]
    assert second["status"] == "ok" and second["job_flags"] == "--lr 0.02"
    assert (second["job"]["lr_policy"], second["job"]["base_lr"]) == ("step", 0.02)
    with open(out / "metrics-recipe.csv", newline="") as f:      # both recipes' rows, numbered
        rows = list(csv.DictReader(f))
    assert {row["recipe"] for row in rows} == {"1", "2"} and "iteration" in rows[0]
    assert not list(out.glob("metrics-recipe?.csv"))
    assert stages["bench_fp16"] == {**stages["bench_fp16"], "status": "skipped",
                                    "reason": "needs CUDA"}
    ort = stages["ort_variants"]
    assert ort["status"] == "ok" and [v["variant"] for v in ort["variants"]] == [
        "fp32", "fp32-tf32", "fp32-nhwc", "fp16", "fp16-nhwc"]
    if not stages["parity"]["status"] == "ok":                    # no GPU here
        assert all(v["error"] == "no NVIDIA GPU here" for v in ort["variants"])
    variants = stages["profile"]["variants"]
    assert [v["variant"] for v in variants] == ["fp32-find", "fast-find", "fast-get"]
    assert all(v["eager_ms"] > 0 and v["start_s"] >= 0 and "replay_ms" not in v for v in variants)
    assert stages["profile"]["network"] == "lenet" and stages["profile"]["steps"] == 2

    table = (out / "results.md").read_text()
    assert "SMOKE" in table and "| train | ok |" in table and "24 min 6 s" in table
    assert "| training, --fast --cudnn-search get |" in table and "| train step, fast-get |" in table
    assert "| val accuracy, --fast --cudnn-search get, solver --policy poly --power 0.5 | 0." in table
    assert "| val accuracy, --fast --cudnn-search get, solver --lr 0.02 | 0." in table
    assert proc.stdout.rstrip().endswith(table.rstrip().splitlines()[-1])   # the table comes last
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) <= 8, files                                 # what one device call brings back
    assert stages["setup"]["status"] == "ok" and "onnxruntime" in stages["setup"]


@pytest.mark.slow
def test_budget_is_kept(tmp_path, mnist_dir):
    budget = 16
    proc, out, results = run_smoke(tmp_path, mnist_dir, "--budget", str(budget), timeout=120)
    stages = results["stages"]
    assert results["elapsed_s"] <= budget
    assert list(stages) == STAGES
    assert any(s.get("reason", "").startswith("budget") for s in stages.values()), stages
    assert (out / "results.md").is_file()
