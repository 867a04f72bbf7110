"""The prepared GPU measurement: the seed DIGITS job (MNIST 256x256x3, GoogLeNet, 2 epochs) on
one GPU, within a fixed time budget, with the seed's figures beside.

    bash benchmarks/gpu/run.sh [--smoke] [--out DIR] [--budget SECONDS] [--only S,..] [--skip S,..]
                               [--fast-graphs] [--train-flags F] [--fast-flags F]
                               [--recipe-flags F]...                             # (run.sh calls this)

Stages, in order; each is timed, run under a timeout, and skipped ("skipped: budget") when what
is left of the budget cannot hold it, so the whole run never passes the budget:

  setup       install .gpu/wheels/*.whl (lmdb, protobuf, isal) and onnxruntime-gpu (joined from the
              parts in /tmp/redigits-ort, sha256 checked) into /tmp/redigits-site; children get
              PYTHONPATH=/tmp/redigits-site:REPO and LD_LIBRARY_PATH with the nvidia-* wheels'
              lib folders (torch's CUDA 13 and cuDNN 9, which onnxruntime-gpu needs); probe.py
              reports the imports and which ORT providers really run
  facts       nvidia-smi, torch/CUDA, cores, /dev/shm, trainer.device.machine_description()
  gpu_tests   pytest -m gpu on the test files that have gpu tests (needs CUDA)
  dataset     lmdb_builder mnist --image-size 256 --channels 3 (DIGITS' 25 % split)
  job         trainer new --network googlenet --epochs 2 --lr 0.01 --seed 1
  train       trainer run solver.prototxt --device cuda --workers cores-2 (fp32, TF32 off;
              --train-flags adds trainer flags, e.g. "--fast --cuda-graphs");
              at the budget it is sent SIGINT (the trainer snapshots and stops), then killed
  onnx        converter onnx --job
  bench_cuda, bench_cuda_graph, bench_cpu, bench_tensorrt    inference bench --batch 1,32 --json
              per provider (bench_cuda_graph: --provider cuda --cuda-graph)
  parity      parity.py: ORT CUDA against ORT CPU on 64 val images and 64 random inputs
  bench_fp16  converter onnx --fp16 (checked against the float32 model on val_db), then
              inference bench --cuda-graph of it (GPU only)
  ort_variants  ort_variants.py: batch 1 as a CUDA graph with TF32, NHWC kernels and the fp16
              model, each against the CPU's outputs; the GPU kernels of fp32 and fp16-nhwc
  train_graphs  a second job, fp32 with --cuda-graphs (trainer/graphs.py), when the budget
              still holds the fp32 time + 20 % (GPU only)
  train_fast  a third job trained with --fast (--fast-graphs: with --cuda-graphs too; --fast-flags
              adds more), likewise
  train_recipe  with --recipe-flags: a fourth job whose `trainer new` gets those flags (other
              solver settings, e.g. "--policy poly --power 0.5"), trained as train_fast is;
              train_recipe2, 3, ...: one more job per further --recipe-flags
  profile     profile_step.py: GPU time of one training step (graph replay) against the eager
              step, the start (cuDNN's search or heuristics) and the top kernels

--smoke checks the script itself on a CPU in about half a minute: LeNet on a 300-image 28x28
dataset, 3 iterations on the CPU, CPU benchmarks only; its figures are not comparable with the seed.

The out folder gets results.json (rewritten after every stage, so a killed run keeps what
finished), results.md (the table, also printed last), run.log (every command and its output),
metrics.csv / training.png of the main run, metrics-graphs.csv, metrics-fast.csv and
metrics-recipe.csv (every recipe's, its first column the recipe's number): at most 8 files,
what one device call brings back. Work files
(dataset, jobs, snapshots) go to --work (default /tmp/redigits-gpu-work; a temporary folder,
removed at the end, for --smoke).
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SITE = Path(os.environ.get("REDIGITS_SITE_DIR", "/tmp/redigits-site"))
ORT_DIR = Path(os.environ.get("REDIGITS_ORT_DIR", "/tmp/redigits-ort"))
GPU_DIR = REPO / ".gpu"
RESERVE_S = 8.0            # kept back from every stage for writing the results

# The seed DIGITS job (../shared/reference/seed-job) and the goals of the GPU issue.
SEED = {"train_s": 24 * 60 + 6, "val_accuracy": 0.962, "onnx_batch1_ms": 4.94}
PROFILED = ("fp32-find", "fast-find", "fast-get")  # profile_step.py's variants
GOALS = {"train_s": 60.0, "val_accuracy": 0.99, "onnx_batch1_ms": 1.0, "parity_max_abs": 1e-4}


@dataclass
class Cmd:
    rc: int | None          # None: did not start
    seconds: float
    stdout: str             # only when captured
    timed_out: bool
    interrupted: bool       # stopped with SIGINT at the deadline
    error: str = ""         # last lines of output when rc != 0


class Skip(Exception):
    """A stage that cannot run here (the reason is recorded)."""


class Run:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.smoke = args.smoke
        self.start = time.monotonic()
        self.deadline = self.start + args.budget
        self.out = args.out
        self.out.mkdir(parents=True, exist_ok=True)
        self.log_path = self.out / "run.log"
        self.log_path.write_text("")
        self.work = args.work
        self.work.mkdir(parents=True, exist_ok=True)
        self.py = sys.executable
        self.cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        self.env = dict(os.environ, PYTHONUNBUFFERED="1", MPLBACKEND="Agg")
        self.cuda = False
        self.half: Path | None = None  # the fp16 export, once bench_fp16 has made it
        self.results: dict = {
            "smoke": self.smoke, "started_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "budget_s": args.budget, "repo": str(REPO), "commit": _commit(), "python": self.py,
            "work": str(self.work), "network": args.network, "fast_graphs": args.fast_graphs,
            "train_flags": args.train_flags, "fast_flags": args.fast_flags,
            "recipe_flags": args.recipe_flags,
            "seed_anchors": SEED, "goals": GOALS,
            "stages": {}}
        self.save()

    # -- bookkeeping ---------------------------------------------------------------------------
    def left(self) -> float:
        return self.deadline - time.monotonic() - RESERVE_S

    def save(self) -> None:
        self.results["elapsed_s"] = round(time.monotonic() - self.start, 2)
        tmp = self.out / ".results.json.tmp"
        tmp.write_text(json.dumps(self.results, indent=2, default=str) + "\n")
        os.replace(tmp, self.out / "results.json")

    def log(self, text: str) -> None:
        with open(self.log_path, "a") as f:
            f.write(text if text.endswith("\n") else text + "\n")

    def say(self, text: str) -> None:
        print(text, flush=True)
        self.log(text)

    def stage(self, name: str, need: float, body: Callable[[dict], None]) -> dict:
        """Run `body(record)` if `need` seconds are left; record status, seconds, errors."""
        record: dict = {}
        self.results["stages"][name] = record
        left = self.left()
        if not self.wanted(name):
            record.update(status="skipped", reason="not asked for (--only / --skip)")
            self.say(f"== {name}: skipped (--only / --skip)")
            self.save()
            return record
        if left < need:
            record.update(status="skipped", reason="budget", left_s=round(left, 1), need_s=need)
            self.say(f"== {name}: skipped (budget: {left:.0f} s left, needs {need:.0f} s)")
            self.save()
            return record
        self.say(f"== {name} ({left:.0f} s of budget left)")
        t0 = time.monotonic()
        try:
            body(record)
            record.setdefault("status", "ok")
        except Skip as why:
            record.update(status="skipped", reason=str(why))
        except Exception as exc:  # a stage's failure is a result; the next stages still run
            record.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        record["seconds"] = round(time.monotonic() - t0, 2)
        detail = record.get("reason") or record.get("error") or ""
        self.say(f"   {name}: {record['status']} in {record['seconds']:.1f} s"
                 + (f" ({detail})" if detail else ""))
        self.save()
        return record

    def wanted(self, name: str) -> bool:
        """Whether --only and --skip let stage `name` run."""
        return name not in self.args.skip and (not self.args.only or name in self.args.only)

    def ok(self, name: str) -> bool:
        return self.results["stages"].get(name, {}).get("status") == "ok"

    def need_ok(self, *names: str) -> None:
        for name in names:
            if not self.ok(name):
                raise Skip(f"needs {name}")

    def cmd(self, argv: list[str], limit: float, capture: bool = False, interrupt: bool = False,
            grace: float = 30.0, env: dict | None = None) -> Cmd:
        """Run argv in the repo with `limit` seconds (never more than the budget holds). Output
        goes to run.log (stdout also returned when `capture`). At the limit: SIGINT first when
        `interrupt` (the trainer snapshots and stops), `grace` seconds, then the process group
        is killed."""
        limit = max(1.0, min(limit, self.left()))
        grace = min(grace, 0.25 * limit)
        soft = limit - grace if interrupt else limit
        self.log(f"$ {' '.join(map(str, argv))}    # limit {limit:.0f} s")
        t0 = time.monotonic()
        with open(self.log_path, "a") as log, tempfile.TemporaryFile("w+") as cap:
            try:
                proc = subprocess.Popen([str(a) for a in argv], cwd=REPO, env=env or self.env,
                                        stdout=cap if capture else log, stderr=log,
                                        start_new_session=True)
            except OSError as exc:
                return Cmd(None, 0.0, "", False, False, str(exc))
            timed_out = interrupted = False
            try:
                proc.wait(timeout=soft)
            except subprocess.TimeoutExpired:
                timed_out = True
                if interrupt:
                    interrupted = True
                    proc.send_signal(signal.SIGINT)
                    try:
                        proc.wait(timeout=limit - soft)
                    except subprocess.TimeoutExpired:
                        pass
                if proc.poll() is None:
                    _kill_group(proc)
            _kill_group(proc)   # also worker processes left behind
            seconds = time.monotonic() - t0
            cap.seek(0)
            stdout = cap.read()
        if capture:
            self.log(stdout)
        tail = ""
        if proc.returncode:
            text = self.log_path.read_text(errors="replace")[-4000:]
            tail = " | ".join(line.strip() for line in text.splitlines()[-6:] if line.strip())[-800:]
        note = " (timed out)" if timed_out else ""
        self.log(f"# exit {proc.returncode} after {seconds:.1f} s{note}")
        return Cmd(proc.returncode, seconds, stdout, timed_out, interrupted, tail)

    # -- stages --------------------------------------------------------------------------------
    def setup(self, r: dict) -> None:
        wheels, skipped = [], {}
        for wheel in sorted((GPU_DIR / "wheels").glob("*.whl")):
            why = _wheel_mismatch(wheel.name)
            if why:
                skipped[wheel.name] = why
            else:
                wheels.append(wheel)
        r["ort_parts"] = ort = self._join_ort()
        if ort.get("wheel"):
            why = _wheel_mismatch(Path(ort["wheel"]).name)
            if why:
                skipped[Path(ort["wheel"]).name] = why
            else:
                wheels.append(Path(ort["wheel"]))
        r["wheels_skipped"] = skipped
        if wheels:
            stamp = SITE / ".redigits-installed.json"
            want = sorted(f"{w.name}:{w.stat().st_size}" for w in wheels)
            have = json.loads(stamp.read_text()) if stamp.is_file() else []
            if have == want:
                r["wheels_installed"] = [w.name for w in wheels] + ["(already in place)"]
            else:
                res = self.cmd([self.py, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
                                "--no-compile", "--no-cache-dir", "--upgrade", "--target", SITE,
                                "--disable-pip-version-check", *wheels], 240)
                if res.rc != 0:
                    raise RuntimeError(f"pip install --target {SITE} failed: {res.error}")
                stamp.write_text(json.dumps(want))
                r["wheels_installed"] = [w.name for w in wheels]
                r["pip_s"] = round(res.seconds, 1)
        else:
            r["wheels_installed"] = []
        paths = ([str(SITE)] if wheels and SITE.is_dir() else []) + [str(REPO)]
        if self.env.get("PYTHONPATH"):
            paths.append(self.env["PYTHONPATH"])
        self.env["PYTHONPATH"] = os.pathsep.join(paths)
        libs = _nvidia_lib_dirs([SITE] + [Path(p) for p in sys.path if p])
        if libs:
            old = self.env.get("LD_LIBRARY_PATH", "")
            self.env["LD_LIBRARY_PATH"] = os.pathsep.join(libs + ([old] if old else []))
        r["pythonpath"] = self.env["PYTHONPATH"]
        mnist = _mnist_dir()
        if mnist is not None:          # the gpu tests' fixtures read it too
            self.env["REDIGITS_MNIST_DIR"] = str(mnist)
        r["ld_library_path_added"] = libs
        probe = self.cmd([self.py, HERE / "probe.py", "imports", "ort"], 120, capture=True)
        found = _last_json(probe.stdout)
        r["imports"] = {k: (v.get("version") if "version" in v else v)
                        for k, v in found.get("imports", {}).items()}
        r["onnxruntime"] = found.get("ort", {"error": probe.error or "probe gave no JSON"})
        r["ort_gpu_installed"] = "CUDAExecutionProvider" in r["onnxruntime"].get("available_providers", [])
        r["available_providers"] = r["onnxruntime"].get("available_providers")
        broken = [k for k, v in found.get("imports", {}).items()
                  if k in ("lmdb", "google.protobuf", "onnx", "onnxruntime", "torch",
                           "prototxt.caffe_pb2", "lmdb_builder", "trainer", "converter", "inference")
                  and ("error" in v or v.get("ok") is False)]
        if broken:
            raise RuntimeError("cannot import " + "; ".join(
                f"{k}: {found['imports'][k].get('error')}" for k in broken))

    def _join_ort(self) -> dict:
        """Join the onnxruntime-gpu parts received in ORT_DIR (receive.sh) into the wheel."""
        manifest = ORT_DIR / "ort.manifest"
        if not manifest.is_file():
            return {"status": f"no parts received ({manifest} missing)"}
        parts = [line.split() for line in manifest.read_text().splitlines() if line.strip()]
        present = [p for p, size in parts if (ORT_DIR / p).is_file()
                   and (ORT_DIR / p).stat().st_size == int(size)]
        missing = [p for p, _ in parts if p not in present]
        info: dict = {"present": present, "missing": missing}
        if missing:
            info["status"] = f"incomplete: {len(missing)} of {len(parts)} parts missing"
            return info
        name = (ORT_DIR / "ort.wheel").read_text().strip()
        expected = (ORT_DIR / "ort.sha256").read_text().split()[0]
        wheel = ORT_DIR / "joined" / name
        if not (wheel.is_file() and _sha256(wheel) == expected):
            wheel.parent.mkdir(exist_ok=True)
            with open(wheel, "wb") as f:
                for p, _ in parts:
                    with open(ORT_DIR / p, "rb") as src:
                        shutil.copyfileobj(src, f, 16 << 20)
            got = _sha256(wheel)
            if got != expected:
                wheel.unlink()
                info["status"] = f"sha256 mismatch: joined {got}, expected {expected}"
                return info
        info.update(status="joined, sha256 ok", wheel=str(wheel))
        return info

    def facts(self, r: dict) -> None:
        if shutil.which("nvidia-smi"):
            res = self.cmd(["nvidia-smi", "-L"], 30, capture=True)
            r["nvidia_smi_L"] = res.stdout.strip()
            res = self.cmd(["nvidia-smi", "--query-gpu=name,memory.total,driver_version,compute_cap,"
                            "power.limit,clocks.max.sm", "--format=csv,noheader"], 30, capture=True)
            r["nvidia_smi"] = res.stdout.strip()
        else:
            r["nvidia_smi"] = "not found"
        probe = self.cmd([self.py, HERE / "probe.py", "facts"], 120, capture=True)
        r.update(_last_json(probe.stdout).get("facts", {"error": probe.error}))
        self.cuda = bool(r.get("cuda_available"))
        r["cores"] = self.cores

    def gpu_tests(self, r: dict) -> None:
        if not self.cuda:
            raise Skip("no CUDA")
        files = sorted(str(p.relative_to(REPO)) for p in (REPO / "tests").rglob("test_*.py")
                       if re.search(r"mark\.gpu\b", p.read_text(errors="replace")))
        r["files"] = files
        if not files:
            raise Skip("no test file has gpu tests")
        reserve = self.post_train_need() + 120 if self.wanted("train") else 5
        limit = min(120.0, self.left() - reserve)
        if limit < 30:
            raise Skip(f"budget: {self.left():.0f} s left, kept for training")
        res = self.cmd([self.py, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", *files],
                       limit, capture=True)
        lines = [line for line in res.stdout.splitlines() if line.strip()]
        r["summary"] = lines[-1].strip("= ") if lines else ""
        r["failed"] = [line for line in lines if line.startswith(("FAILED", "ERROR"))][:20]
        r["counts"] = {k: int(v) for v, k in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected)",
                                                         r["summary"])}
        r["rc"] = res.rc
        if res.timed_out:
            r.update(status="failed", error="timed out")
        elif res.rc not in (0, 5):
            r.update(status="failed", error=r["summary"] or res.error)

    def dataset(self, r: dict) -> None:
        mnist = _mnist_dir()
        if mnist is None:
            raise RuntimeError("no MNIST: neither .gpu/mnist nor REDIGITS_MNIST_DIR "
                               "(../shared/data/mnist) holds the four idx .gz files")
        self.env["REDIGITS_MNIST_DIR"] = str(mnist)
        size, channels = (28, 1) if self.smoke else (256, 3)
        self.dataset_dir = self.work / f"mnist{size}"
        argv = [self.py, "-m", "lmdb_builder", "mnist", "--out", self.dataset_dir,
                "--image-size", size, "--channels", channels, "--mnist-dir", mnist,
                "--workers", self.cores, "--no-download", "--force"]
        if self.smoke:
            argv += ["--limit", "300"]
        r.update(mnist_dir=str(mnist), image_size=f"{size}x{size}x{channels}", workers=self.cores)
        res = self.cmd(argv, 240)
        _check(res, "lmdb_builder mnist")
        summary = json.loads((self.dataset_dir / "summary.json").read_text())
        dbs = summary.get("databases", {})
        records = {k: v.get("records") for k, v in dbs.items()}
        total = sum(v or 0 for v in records.values())
        r.update(path=str(self.dataset_dir), records=records, total_records=total,
                 wall_s=round(res.seconds, 2), builder_s=summary.get("seconds"),
                 images_per_s=round(total / res.seconds, 1) if res.seconds else None)
        if not total:
            raise RuntimeError(f"{self.dataset_dir} has no records")

    def new_job(self, folder: str, flags: tuple[str, ...] = ()) -> tuple[Path, dict]:
        """`trainer new` with the seed's settings; `flags` (later on the line) override them."""
        job = self.work / folder
        res = self.cmd([self.py, "-m", "trainer", "new", "--dataset", self.dataset_dir, "--network",
                        self.args.network, "--out", job, "--epochs", self.args.epochs, "--lr", "0.01",
                        "--seed", "1", "--force", *flags], 120)
        _check(res, "trainer new")
        return job, _job_facts(job)

    def job(self, r: dict) -> None:
        self.need_ok("dataset")
        self.job_dir, facts = self.new_job(self.args.network)
        r.update(path=str(self.job_dir), **facts)

    def train_argv(self, job: Path, workers: int, fast: bool, graphs: bool = False,
                   extra: tuple[str, ...] = ()) -> list:
        argv = [self.py, "-m", "trainer", "run", job / "solver.prototxt", "--device", self.device,
                "--workers", workers, "--no-progress"]
        if self.smoke:
            argv += ["--max-iter", "3", "--test-iter", "2"]
        return (argv + (["--fast"] if fast else []) + (["--cuda-graphs"] if graphs else [])
                + list(extra))

    @property
    def device(self) -> str:
        return self.args.device or ("cpu" if self.smoke else "cuda")

    def post_train_need(self) -> float:
        """Seconds kept for export, benchmarks and parity after the fp32 training (none when
        the export, which they all need, is not asked for)."""
        if not self.wanted("onnx"):
            return 0.0
        return 35.0 if self.smoke else 8 * self.args.bench_seconds + 150.0

    def train(self, r: dict, job: Path | None = None, fast: bool = False, limit: float | None = None,
              graphs: bool = False, extra: tuple[str, ...] | None = None, suffix: str = "") -> None:
        """Train `job` (the main one by default); its metrics.csv becomes metrics{suffix}.csv."""
        self.need_ok("job")
        if self.device.startswith("cuda") and not self.cuda:
            raise Skip("no CUDA")
        job = job or self.job_dir
        workers = max(1, self.cores - 2) if not self.smoke else 1
        limit = limit if limit is not None else self.left() - self.post_train_need()
        if limit < (10 if self.smoke else 30):
            raise Skip(f"budget: {limit:.0f} s for training after keeping {self.post_train_need():.0f} s "
                       "for export and benchmarks")
        extra = tuple(self.args.train_flags.split()) if extra is None else extra
        r.update(device=self.device, workers=workers, fast=fast, cuda_graphs=graphs,
                 flags=" ".join(extra), limit_s=round(limit, 1))
        res = self.cmd(self.train_argv(job, workers, fast, graphs, extra), limit, interrupt=True)
        if res.rc not in (0, 130) and not res.timed_out and res.seconds < 120 and workers > 0 \
                and self.left() - self.post_train_need() > 60:
            # worker processes (shared memory) are the most fragile part on a new machine
            r["first_attempt"] = {"workers": workers, "rc": res.rc, "seconds": round(res.seconds, 1),
                                  "error": res.error}
            workers = 0
            r["workers"] = 0
            res = self.cmd(self.train_argv(job, 0, fast, graphs, extra),
                           self.left() - self.post_train_need(), interrupt=True)
        r.update(rc=res.rc, wall_s=round(res.seconds, 2), stopped_at_budget=res.interrupted)
        r.update(_train_figures(job, self.results["stages"]["job"], res.seconds))
        if res.rc not in (0, 130) or r.get("iterations_done", 0) == 0:
            raise RuntimeError(f"trainer run exit {res.rc}: {res.error}")
        if res.interrupted:
            r["note"] = "stopped at the budget (SIGINT: snapshot, then exit)"
        if (job / "metrics.csv").is_file():
            shutil.copy(job / "metrics.csv", self.out / f"metrics{suffix}.csv")
        if not suffix and (job / "training.png").is_file():
            shutil.copy(job / "training.png", self.out / "training.png")

    def onnx(self, r: dict) -> None:
        self.need_ok("train")
        self.model = self.job_dir / "model.onnx"
        res = self.cmd([self.py, "-m", "converter", "onnx", "--job", self.job_dir, "--out", self.model],
                       180, capture=True)
        _check(res, "converter onnx")
        r.update(path=str(self.model), bytes=self.model.stat().st_size, report=res.stdout.strip()[-400:])

    def bench(self, r: dict, provider: str, graph: bool = False, model: Path | None = None) -> None:
        self.need_ok("onnx")
        if self.smoke and provider != "cpu":
            raise Skip("smoke: CPU only")
        seconds = self.args.bench_seconds
        batches = "1,32"
        res = self.cmd([self.py, "-m", "inference", "bench", model or self.model, "--provider", provider,
                        "--batch", batches, "--seconds", seconds, "--json",
                        *(["--cuda-graph"] if graph else [])],
                       90 if provider == "tensorrt" else 60 + 4 * seconds, capture=True)
        if res.rc != 0:
            r.update(status="failed", rc=res.rc, error=_error_line(self.log_path, res) or res.error)
            return
        found = _last_json(res.stdout)
        r.update(provider=found.get("provider"), rows=found.get("rows", []))
        for row in r["rows"]:
            r[f"batch{row['batch']}_p50_ms"] = row["p50_ms"]
            r[f"batch{row['batch']}_images_per_s"] = row["images_per_s"]

    def parity(self, r: dict) -> None:
        self.need_ok("onnx")
        res = self.cmd([self.py, HERE / "parity.py", self.model, "--dataset", self.dataset_dir,
                        "--count", "64", "--provider", "cuda", "--json"], 120, capture=True)
        found = _last_json(res.stdout)
        if not found:
            raise RuntimeError(f"parity.py exit {res.rc}: {res.error}")
        r.update(found)
        if found.get("status") == "skipped":
            raise Skip(found.get("reason", "").replace(f"{self.model}: ", "")[:400])
        if found.get("status") != "ok":
            r["status"] = "failed"
            r["error"] = f"max abs {found.get('max_abs'):.3g} > {found.get('tolerance')}"

    def train_graphs(self, r: dict) -> None:
        """fp32 again with --cuda-graphs (trainer/graphs.py), against the eager fp32 run."""
        self._variant(r, "graphs", fast=False, graphs=True)

    def train_fast(self, r: dict) -> None:
        self._variant(r, "fast", fast=True, graphs=self.args.fast_graphs)

    def train_recipe(self, r: dict, number: int) -> None:
        """train_fast's training of a job made with other solver settings (the `number`th
        --recipe-flags); its metrics go into metrics-recipe.csv under its number."""
        if len(self.args.recipe_flags) < number:
            raise Skip("no --recipe-flags")
        name = f"recipe{number}"
        r["recipe"] = number
        try:
            self._variant(r, name, fast=True, graphs=self.args.fast_graphs,
                          job_flags=tuple(self.args.recipe_flags[number - 1].split()))
        finally:
            _append_csv(self.out / f"metrics-{name}.csv", self.out / "metrics-recipe.csv",
                        "recipe", number)

    def _variant(self, r: dict, name: str, fast: bool, graphs: bool,
                 job_flags: tuple[str, ...] = ()) -> None:
        if graphs and not self.device.startswith("cuda"):
            raise Skip("CUDA graphs need a CUDA device")
        self.need_ok("dataset", "train")
        fp32 = self.results["stages"]["train"]
        if fp32.get("stopped_at_budget"):
            raise Skip("budget: the fp32 run was stopped at the budget")
        estimate = 1.2 * fp32["wall_s"] + 15
        r["estimate_s"] = round(estimate, 1)
        if self.left() < estimate:
            raise Skip(f"budget: {self.left():.0f} s left, fp32 took {fp32['wall_s']:.0f} s (+20 %)")
        job, facts = self.new_job(f"{self.args.network}-{name}", job_flags)
        r.update(path=str(job), job_flags=" ".join(job_flags), job=facts)
        extra = tuple(self.args.fast_flags.split()) if fast else ()
        self.train(r, job, fast=fast, limit=self.left(), graphs=graphs, extra=extra, suffix=f"-{name}")

    def bench_fp16(self, r: dict) -> None:
        """The float16 export (converter/half.py) replayed as a CUDA graph."""
        self.need_ok("onnx")
        if self.smoke or not self.cuda:
            raise Skip("needs CUDA")
        half = self.model.with_name("model-fp16.onnx")
        res = self.cmd([self.py, "-m", "converter", "onnx", "--job", self.job_dir, "--out", half,
                        "--fp16", "--calibrate", self.dataset_dir], 180, capture=True)
        _check(res, "converter onnx --fp16")
        r.update(path=str(half), bytes=half.stat().st_size, report=res.stdout.strip()[-400:])
        self.half = half
        self.bench(r, "cuda", graph=True, model=half)

    def ort_variants(self, r: dict) -> None:
        """ort_variants.py: batch-1 latency under other CUDA provider options (TF32, NHWC)
        and of the fp16 export, each as a CUDA graph, with its difference from the CPU; the
        GPU kernels of two of them."""
        self.need_ok("onnx")
        res = self.cmd([self.py, HERE / "ort_variants.py", self.model, "--json",
                        "--seconds", min(2.0, self.args.bench_seconds),
                        *(["--fp16", self.half] if self.half else [])], 180, capture=True)
        found = _last_json(res.stdout)
        if not found:
            raise RuntimeError(f"ort_variants.py exit {res.rc}: {res.error}")
        r.update(variants=found["variants"])

    def profile(self, r: dict) -> None:
        argv = [self.py, HERE / "profile_step.py", "--json"]
        if self.smoke:
            argv += ["--network", "lenet", "--batch", "8", "--test-batch", "4", "--steps", "2",
                     "--device", "cpu"]
        elif not self.cuda:
            raise Skip("no CUDA")
        res = self.cmd(argv, min(240.0, self.left()), capture=True)
        found = _last_json(res.stdout)
        if not found:
            raise RuntimeError(f"profile_step.py exit {res.rc}: {res.error}")
        r.update(found)     # kept in results.json alone: one device call brings back 8 files

    # -- the whole run -------------------------------------------------------------------------
    def run(self) -> int:
        s = self.stage
        s("setup", 10, self.setup)
        s("facts", 5, self.facts)
        s("gpu_tests", 30, self.gpu_tests)
        s("dataset", 5 if self.smoke else 20, self.dataset)
        s("job", 3, self.job)
        s("train", 10 if self.smoke else 30, lambda r: self.train(r))
        s("onnx", 10, self.onnx)
        s("bench_cuda", 15, lambda r: self.bench(r, "cuda"))
        s("bench_cuda_graph", 15, lambda r: self.bench(r, "cuda", graph=True))
        s("bench_cpu", 10, lambda r: self.bench(r, "cpu"))
        s("parity", 10, self.parity)
        s("bench_tensorrt", 15, lambda r: self.bench(r, "tensorrt"))
        s("bench_fp16", 40, self.bench_fp16)
        s("ort_variants", 10 if self.smoke else 50, self.ort_variants)
        s("train_graphs", 10 if self.smoke else 30, self.train_graphs)
        s("train_fast", 10 if self.smoke else 30, self.train_fast)
        for number in range(1, max(1, len(self.args.recipe_flags)) + 1):
            s(recipe_stage(number), 10 if self.smoke else 30,
              lambda r, n=number: self.train_recipe(r, n))
        s("profile", 10 if self.smoke else 60, self.profile)
        self.results["finished_utc"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.save()
        table = markdown(self.results)
        (self.out / "results.md").write_text(table)
        self.log(table)
        print(table, flush=True)
        return 0


# -- helpers -------------------------------------------------------------------------------------
def recipe_stage(number: int) -> str:
    """train_recipe, train_recipe2, ...: the stage of the `number`th --recipe-flags."""
    return "train_recipe" + (str(number) if number > 1 else "")


def _append_csv(src: Path, dst: Path, column: str, value) -> None:
    """Move `src`'s rows to the end of `dst` with `column` = `value` in front (the header once)."""
    if not src.is_file():
        return
    with open(src, newline="") as f:
        rows = list(csv.reader(f))
    new = not dst.is_file()
    with open(dst, "a", newline="") as f:
        out = csv.writer(f)
        if new and rows:
            out.writerow([column, *rows[0]])
        out.writerows([value, *row] for row in rows[1:])
    src.unlink()


def _commit() -> str:
    staged = REPO / ".gpu" / "ort" / "commit"  # written by stage.sh where the tree was made
    if staged.is_file() and staged.read_text().strip():
        return staged.read_text().strip()
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, timeout=10).stdout.strip()
    except Exception:
        return ""


def _kill_group(proc: subprocess.Popen) -> None:
    """End the process group `proc` leads (it was started in a session of its own)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            continue
        end = time.monotonic() + 3
        while time.monotonic() < end:
            try:
                os.killpg(proc.pid, 0)
            except (ProcessLookupError, PermissionError):
                return
            time.sleep(0.1)


def _check(res: Cmd, what: str) -> None:
    if res.timed_out:
        raise RuntimeError(f"{what} timed out after {res.seconds:.0f} s")
    if res.rc != 0:
        raise RuntimeError(f"{what} exit {res.rc}: {res.error}")


def _last_json(text: str) -> dict:
    """The JSON object that ends `text` (tools may print other lines before it)."""
    lines = text.splitlines()
    for i in range(len(lines)):
        if lines[i].startswith("{"):
            try:
                return json.loads("\n".join(lines[i:]))
            except json.JSONDecodeError:
                continue
    return {}


def _error_line(log: Path, res: Cmd) -> str:
    """The last 'error:' line of the log (our CLIs' one-line errors)."""
    lines = [line for line in log.read_text(errors="replace").splitlines()[-200:]
             if line.startswith("error:")]
    return lines[-1][:600] if lines else ""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(16 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _wheel_mismatch(name: str) -> str:
    """Why the wheel `name` is not installed here: its tags do not fit this Python, or this
    Python already has that version ('' when it should be installed)."""
    from importlib import metadata
    try:
        from packaging.tags import sys_tags
        from packaging.utils import parse_wheel_filename
    except ImportError:
        from pip._vendor.packaging.tags import sys_tags
        from pip._vendor.packaging.utils import parse_wheel_filename
    project, version, _, tags = parse_wheel_filename(name)
    if not any(t in set(sys_tags()) for t in tags):
        return (f"not for this Python {sys.version_info.major}.{sys.version_info.minor} "
                f"({', '.join(sorted(map(str, tags)))})")
    try:
        if metadata.version(str(project)) == str(version):
            return f"{project} {version} is already installed"
    except metadata.PackageNotFoundError:
        pass
    return ""


def _nvidia_lib_dirs(roots: list[Path]) -> list[str]:
    """lib folders of the nvidia-* wheels (cuBLAS, cuDNN, cuFFT, cuRAND, ... of torch's CUDA)."""
    found: list[str] = []
    for root in roots:
        base = root / "nvidia"
        if not base.is_dir():
            continue
        for lib in sorted(list(base.glob("*/lib")) + list(base.glob("*/*/lib"))):
            if lib.is_dir() and any(lib.glob("*.so*")) and str(lib) not in found:
                found.append(str(lib))
    return found


def _mnist_dir() -> Path | None:
    names = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
             "t10k-labels-idx1-ubyte.gz")
    for d in (os.environ.get("REDIGITS_MNIST_DIR"), GPU_DIR / "mnist", REPO.parent / "shared/data/mnist"):
        if d and all((Path(d) / n).is_file() for n in names):
            return Path(d).resolve()
    return None


def _job_facts(job: Path) -> dict:
    """max_iter, test settings and batch sizes from the job's solver and train_val."""
    solver = (job / "solver.prototxt").read_text()
    facts: dict = {}
    for key in ("max_iter", "test_iter", "test_interval", "snapshot", "display", "stepsize"):
        m = re.search(rf"^\s*{key}:\s*(\d+)", solver, re.M)
        if m:
            facts[key] = int(m.group(1))
    for key in ("base_lr", "power", "gamma"):
        m = re.search(rf"^\s*{key}:\s*([\d.e+-]+)", solver, re.M)
        if m:
            facts[key] = float(m.group(1))
    for key in ("lr_policy", "solver_type"):       # "poly"; SGD (DIGITS writes the enum bare)
        m = re.search(rf'^\s*{key}:\s*"?(\w+)"?', solver, re.M)
        if m:
            facts[key] = m.group(1)
    train_val = (job / "train_val.prototxt").read_text()
    sizes = [int(x) for x in re.findall(r"batch_size:\s*(\d+)", train_val)]
    if sizes:
        facts["batch_size"] = sizes[0]          # DIGITS writes the TRAIN data layer first
        facts["val_batch_size"] = sizes[1] if len(sizes) > 1 else sizes[0]
    m = re.search(r"iter_size:\s*(\d+)", solver)
    facts["iter_size"] = int(m.group(1)) if m else 1
    return facts


def _train_figures(job: Path, job_stage: dict, wall: float) -> dict:
    """From metrics.csv (iteration, epoch, phase, name, value) and caffe_output.log."""
    figures: dict = {}
    path = job / "metrics.csv"
    if not path.is_file():
        return {"iterations_done": 0}
    tests: dict[int, dict] = {}
    last_train: dict = {}
    done = 0
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            it, phase = int(row["iteration"]), row["phase"]
            if phase == "train":
                done = max(done, it + 1)
                if last_train.get("iteration") != it:
                    last_train = {"iteration": it}
                last_train[row["name"]] = float(row["value"])
            elif phase == "val":
                test = tests.setdefault(it, {"iteration": it, "epoch": round(float(row["epoch"]), 4)})
                test[row["name"]] = float(row["value"])
    vals = [tests[k] for k in sorted(tests)]
    names = sorted({k for t in vals for k in t} - {"iteration", "epoch"})
    key = "accuracy" if "accuracy" in names else next(
        (n for n in names if "accuracy" in n and "top5" not in n), None)
    figures.update(iterations_done=done, val_outputs=names, accuracy_output=key, val_tests=vals,
                   last_train=last_train)
    if vals and key:
        figures["final_val_accuracy"] = vals[-1].get(key)
        figures["final_val_iteration"] = vals[-1]["iteration"]
        loss = "loss" if "loss" in names else None
        figures["final_val_loss"] = vals[-1].get(loss) if loss else None
    batch = job_stage.get("batch_size", 0) * job_stage.get("iter_size", 1)
    if wall and batch:
        figures["images_per_s_wall"] = round(done * batch / wall, 1)
    log = job / "caffe_output.log"
    if log.is_file():
        text = log.read_text(errors="replace")
        rates = [float(x) for x in re.findall(r"Iteration \d+ \(([\d.e+-]+) iter/s", text)]
        rates = [x for x in rates[1:] if x > 0]       # the first includes the start-up
        if rates and batch:
            figures["iter_per_s_median"] = round(statistics.median(rates), 3)
            figures["images_per_s_steady"] = round(statistics.median(rates) * batch, 1)
        waits = re.findall(r"Waited per training iteration: ([\d.e+-]+) ms for batches, "
                           r"([\d.e+-]+) ms for the device", text)
        if waits:
            figures["wait_data_ms"], figures["wait_device_ms"] = map(float, waits[-1])
    return figures


def _ort_why(ep: dict) -> str:
    """The line of ONNX Runtime's log that says why a provider did not load."""
    for line in ep.get("ort_log", []):
        m = re.search(r"(Failed to load library \S+ with error: .*|Require .*?\.)", line)
        if m:
            return m.group(1)[:220]
    return (ep.get("error") or "?")[:220]


# -- the table -----------------------------------------------------------------------------------
def _dur(s: float | None) -> str:
    if s is None:
        return "-"
    return f"{s:.1f} s" if s < 120 else f"{int(s // 60)} min {s % 60:.0f} s"


def _num(x, fmt: str = "{:.3f}") -> str:
    return "-" if x is None else fmt.format(x)


def markdown(res: dict) -> str:
    """results.md: the figures beside the seed job and the goals, then every stage's status."""
    st = res["stages"]

    def why(stage: str) -> str:
        rec = st.get(stage, {})
        status = rec.get("status", "not run")
        if status == "ok":
            return ""
        text = rec.get("reason") or rec.get("error") or ""
        return status + (f": {text[:160]}" if text else "")

    def meets(rec: dict, key: str, goal: float, smaller: bool) -> str:
        value = rec.get(key)
        if value is None or res["smoke"] or rec.get("status") != "ok":
            return ""
        return " ✓" if (value <= goal if smaller else value >= goal) else " ✗"

    def train_cell(name: str) -> str:
        t = st.get(name, {})
        if t.get("status") != "ok":
            return why(name) or "-"
        extra = []
        if t.get("images_per_s_wall"):
            extra.append(f"{t['images_per_s_wall']:.0f} img/s whole run")
        if t.get("images_per_s_steady"):
            extra.append(f"{t['images_per_s_steady']:.0f} img/s steady")
        if t.get("wait_data_ms") is not None:
            extra.append(f"waits per iteration: data {t['wait_data_ms']:.2g} ms, device "
                         f"{t['wait_device_ms']:.2g} ms")
        if t.get("stopped_at_budget"):
            extra.append(f"stopped at the budget, iteration {t.get('iterations_done')}")
        cell = _dur(t.get("wall_s")) + (f" ({', '.join(extra)})" if extra else "")
        return cell + meets(t, "wall_s", GOALS["train_s"], True)

    def acc_cell(name: str) -> str:
        t = st.get(name, {})
        a = t.get("final_val_accuracy")
        if a is None:
            return "-"
        cell = f"{a:.4f} (iteration {t.get('final_val_iteration')})"
        return cell + meets(t, "final_val_accuracy", GOALS["val_accuracy"], False)

    def bench_cell(name: str, key: str) -> str:
        b = st.get(name, {})
        if b.get("status") != "ok":
            return why(name) or "-"
        v = b.get(key)
        if v is None:
            return "-"
        if key.endswith("_ms"):
            return f"{v:.3f} ms" + (meets(b, key, GOALS["onnx_batch1_ms"], True)
                                    if name.startswith("bench_cuda") or name == "bench_fp16"
                                    else "")
        return f"{v:,.0f} images/s"

    def parity_cell() -> str:
        p = st.get("parity", {})
        if p.get("max_abs") is None:
            return why("parity") or "-"
        return (f"{p['max_abs']:.2e} / {p.get('rel_l2', 0):.2e}"
                + meets(p, "max_abs", GOALS["parity_max_abs"], True))

    def variant_cell(v: dict) -> str:
        if v.get("error"):
            return v["error"][:160]
        k = v.get("kernels", {})
        return (f"{v['p50_ms']:.3f} ms (p99 {v['p99_ms']:.3f}), max abs vs CPU "
                f"{v['max_abs_vs_cpu']:.1e}" + (" ✓" if v["p50_ms"] < GOALS["onnx_batch1_ms"]
                                                  else " ✗")
                + (f"; GPU {k['kernel_ms_per_step']:.3f} ms in {k['kernels_per_step']} kernels"
                   if "kernel_ms_per_step" in k else ""))

    def profile_cell(variant: str) -> str:
        rows = [v for v in st.get("profile", {}).get("variants", []) if v["variant"] == variant]
        if not rows:
            return why("profile") or "-"
        v = rows[0]
        if v.get("error"):
            return v["error"][:160]
        kernels = v.get("kernels") or {}
        return (f"replay {_num(v.get('replay_ms'))} ms, eager {_num(v.get('eager_ms'))} ms, "
                f"test replay {_num(v.get('test_replay_ms'))} ms, first 3 steps "
                f"{_num(v.get('start_s'), '{:.1f}')} s"
                + (f"; kernels {_num(kernels.get('kernel_ms_per_step'))} ms in "
                   f"{kernels.get('kernels_per_step')}" if kernels.get("kernel_ms_per_step") else ""))

    facts = st.get("facts", {})
    cpu = (facts.get("machine_description") or {}).get("cpu") or "CPU"
    gpu = (facts.get("gpus") or [{}])[0].get("name") or f"no GPU ({cpu})"
    machine = f"{gpu}; {facts.get('cores', '?')} cores; torch {facts.get('torch', '?')}"
    ds = st.get("dataset", {})
    dataset = why("dataset") or (
        f"{ds.get('image_size')}: {ds.get('total_records', 0):,} records "
        f"({' / '.join(str(v) for v in (ds.get('records') or {}).values())}) "
        f"in {_dur(ds.get('wall_s'))}, {ds.get('images_per_s') or 0:,.0f} images/s")
    ort = st.get("setup", {}).get("onnxruntime", {})
    cuda_ep = ort.get("cuda", {})
    ort_cell = why("setup") or "-"
    if ort:
        ort_cell = (f"onnxruntime {ort.get('version', '?')}: CUDA "
                    + ("runs" if cuda_ep.get("ok") else "does not run: " + _ort_why(cuda_ep)))
        if ort.get("cuda_after_preload_dlls", {}).get("ok"):
            ort_cell += "; after onnxruntime.preload_dlls() it runs"
    seed_train, seed_acc = _dur(SEED["train_s"]), f"{SEED['val_accuracy']}"
    goal_train, goal_acc = f"<= {GOALS['train_s']:.0f} s", f">= {GOALS['val_accuracy']}"
    main = res.get("train_flags") or "fp32"
    fast = " ".join(["--fast"] + (["--cuda-graphs"] if res.get("fast_graphs") else [])
                    + ([res["fast_flags"]] if res.get("fast_flags") else []))
    recipes = res.get("recipe_flags") or [""]
    rows = [
        ("machine", machine, "GPU (DIGITS 6.1, Caffe)", ""),
        ("dataset (MNIST -> LMDB)", dataset, "45,002 / 14,998, 256x256x3", ""),
        (f"training, {res['network']}, {main}", train_cell("train"), seed_train, goal_train),
        (f"val accuracy, {main}", acc_cell("train"), seed_acc, goal_acc),
        ("training, fp32 --cuda-graphs", train_cell("train_graphs"), seed_train, goal_train),
        ("val accuracy, fp32 --cuda-graphs", acc_cell("train_graphs"), seed_acc, goal_acc),
        (f"training, {fast}", train_cell("train_fast"), seed_train, goal_train),
        (f"val accuracy, {fast}", acc_cell("train_fast"), seed_acc, goal_acc),
    ] + [row for number, flags in enumerate(recipes, 1) for row in (
        (f"training, {fast}, solver {flags or '-'}", train_cell(recipe_stage(number)), seed_train,
         goal_train),
        (f"val accuracy, {fast}, solver {flags or '-'}", acc_cell(recipe_stage(number)), seed_acc,
         goal_acc))] + [
        ("ONNX batch 1 p50, CUDA", bench_cell("bench_cuda", "batch1_p50_ms"),
         f"{SEED['onnx_batch1_ms']} ms", f"< {GOALS['onnx_batch1_ms']:.0f} ms"),
        ("ONNX batch 32, CUDA", bench_cell("bench_cuda", "batch32_images_per_s"), "-", ""),
        ("ONNX batch 1 p50, CUDA graph", bench_cell("bench_cuda_graph", "batch1_p50_ms"),
         f"{SEED['onnx_batch1_ms']} ms", f"< {GOALS['onnx_batch1_ms']:.0f} ms"),
        ("ONNX batch 32, CUDA graph", bench_cell("bench_cuda_graph", "batch32_images_per_s"), "-", ""),
        ("ONNX fp16 batch 1 p50, CUDA graph", bench_cell("bench_fp16", "batch1_p50_ms"),
         f"{SEED['onnx_batch1_ms']} ms", f"< {GOALS['onnx_batch1_ms']:.0f} ms"),
        ("ONNX fp16 batch 32, CUDA graph", bench_cell("bench_fp16", "batch32_images_per_s"), "-", ""),
        ("ONNX batch 1 p50, TensorRT", bench_cell("bench_tensorrt", "batch1_p50_ms"), "-", ""),
        ("ONNX batch 1 p50, CPU", bench_cell("bench_cpu", "batch1_p50_ms"), "-", ""),
        ("ONNX batch 32, CPU", bench_cell("bench_cpu", "batch32_images_per_s"), "-", ""),
        ("parity ORT CUDA vs CPU (max abs / rel L2)", parity_cell(), "-",
         f"<= {GOALS['parity_max_abs']:g}"),
        ("pytest -m gpu", st.get("gpu_tests", {}).get("summary") or why("gpu_tests") or "-", "-",
         "all pass"),
        ("ONNX Runtime GPU provider", ort_cell, "-", ""),
    ] + [(f"ONNX batch 1 p50, CUDA graph, {v['variant']}", variant_cell(v), "4.94 ms", "< 1 ms")
         for v in st.get("ort_variants", {}).get("variants", [])
         ] + [(f"train step, {v}", profile_cell(v), "-", "") for v in PROFILED]
    title = "GPU measurement"
    if res["smoke"]:
        title += " — SMOKE (LeNet 28x28 on the CPU, 3 iterations: not comparable with the seed)"
    out = [f"# {title}", "",
           f"{res.get('started_utc', '')}, commit {res.get('commit') or '?'}, "
           f"budget {res['budget_s']:.0f} s, elapsed {res.get('elapsed_s', 0):.0f} s", "",
           "| | this run | seed DIGITS job | goal |", "|---|---|---|---|"]
    out += [f"| {a} | {b.replace('|', '/')} | {c} | {d} |" for a, b, c, d in rows]
    out += ["", "| stage | status | seconds | note |", "|---|---|---:|---|"]
    for name, rec in st.items():
        note = rec.get("reason") or rec.get("error") or rec.get("note") or ""
        out.append(f"| {name} | {rec.get('status', '?')} | {rec.get('seconds', 0):.1f} | "
                   f"{note[:200].replace('|', '/')} |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a quick CPU check of the script (LeNet)")
    parser.add_argument("--out", type=Path, help="results folder (default $OUT, else "
                        "benchmarks/results/gpu/<UTC date-time>)")
    parser.add_argument("--budget", type=float, default=480.0, help="seconds for everything (480)")
    parser.add_argument("--work", type=Path, help="dataset and jobs (default /tmp/redigits-gpu-work; "
                        "a temporary folder for --smoke)")
    parser.add_argument("--network", help="googlenet (lenet for --smoke)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--device", help="training device (cuda; cpu for --smoke)")
    parser.add_argument("--fast-graphs", action="store_true",
                        help="train_fast with --cuda-graphs too")
    parser.add_argument("--train-flags", default="",
                        help='more trainer-run flags for the train stage, e.g. "--fast --cuda-graphs"')
    parser.add_argument("--fast-flags", default="",
                        help='more trainer-run flags for train_fast, e.g. "--cudnn-search get"')
    parser.add_argument("--recipe-flags", action="append", default=[],
                        help='trainer-new flags for train_recipe (other solver settings), e.g. '
                             '"--policy poly --power 0.5"; without them it is skipped; each '
                             'further --recipe-flags adds a stage (train_recipe2, ...)')
    parser.add_argument("--only", type=lambda v: set(v.split(",")), default=set(),
                        help="run only these stages, e.g. setup,facts,gpu_tests")
    parser.add_argument("--skip", type=lambda v: set(v.split(",")), default=set(),
                        help="skip these stages, e.g. gpu_tests (run in an earlier call)")
    parser.add_argument("--bench-seconds", type=float, help="seconds per batch size (3; 0.5 for --smoke)")
    args = parser.parse_args(argv)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    args.out = (args.out or (Path(os.environ["OUT"]) if os.environ.get("OUT")
                             else REPO / "benchmarks" / "results" / "gpu" / stamp)).resolve()
    args.network = args.network or ("lenet" if args.smoke else "googlenet")
    args.bench_seconds = args.bench_seconds or (0.5 if args.smoke else 3.0)
    temporary = args.work is None and args.smoke
    args.work = (args.work or (Path(tempfile.mkdtemp(prefix="redigits-gpu-smoke-")) if args.smoke
                               else Path("/tmp/redigits-gpu-work"))).resolve()
    try:
        return Run(args).run()
    finally:
        if temporary:
            shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
