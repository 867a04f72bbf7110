"""The wheel, installed where the source tree is out of reach, runs every command and a real job.

Builds `pip wheel --no-deps --no-build-isolation` from a copy of the packaged files, installs it
into a new venv (no pip, no dependencies of its own: a .pth line lends it this interpreter's
site-packages for torch and the rest, which puts that folder on sys.path without running its
.pth files, so the editable install's finder for /work/main never loads), and from a temporary
working directory: checks every module resolves into the new venv, runs `--help` of every
redigits command, then with the installed `redigits` script builds a small MNIST dataset, makes
a LeNet job, trains a few iterations, exports ONNX and classifies images. A summary is printed
(`pytest -s`) and written to $REDIGITS_ARTIFACTS/wheel/summary.txt."""
from __future__ import annotations

import configparser
import fnmatch
import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _setup_cfg() -> configparser.ConfigParser:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    return cfg


def _top_packages(cfg) -> list[str]:
    return sorted({name.split(".")[0] for name in cfg["options.packages.find"]["include"].split()})


def _package_data(cfg) -> dict[str, list[str]]:
    """setup.cfg's [options.package_data]: package -> globs."""
    return {pkg: [g.strip() for g in globs.split(",") if g.strip()]
            for pkg, globs in cfg["options.package_data"].items()}


def _expected_files(cfg, root: Path) -> set[str]:
    """Every module and every package-data file of the sources in `root`, as wheel paths."""
    expected = set()
    for top in _top_packages(cfg):
        for path in (root / top).rglob("*.py"):
            if "__pycache__" not in path.parts:
                expected.add(path.relative_to(root).as_posix())
    for package, globs in _package_data(cfg).items():
        folder = root.joinpath(*package.split("."))
        for pattern in globs:
            expected.update(p.relative_to(root).as_posix() for p in folder.glob(pattern)
                            if p.is_file())
    return expected


def _copy_sources(cfg, dest: Path) -> None:
    """The files setuptools reads, and nothing else: no build/, egg-info, tests or venv."""
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, dest / name)
    for top in _top_packages(cfg):
        shutil.copytree(REPO / top, dest / top,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def _run(cmd: list[str], cwd: Path, env: dict[str, str], log: list[str],
         timeout: float = 300) -> str:
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    took = time.monotonic() - start
    shown = " ".join(Path(c).name if i == 0 else "SCRIPT" if "\n" in str(c) else str(c)
                     for i, c in enumerate(cmd)).replace(f"{cwd}/", "").replace(str(cwd.parent), "$TMP")
    log.append(f"$ {shown}   [{took:.1f} s, exit {proc.returncode}]")
    assert proc.returncode == 0, f"{shown} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


HELP_SCRIPT = """
import contextlib, io, json, sys
from redigits import cli
out = {}
for c in cli.iter_commands():
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = cli.main([*c.words, "--help"])
    out[" ".join(c.words)] = [code, c.package, c.target, buf.getvalue()]
commands = {p.module: [name for name, _ in cli.package_commands(p.module)] for p in cli.PACKAGES}
json.dump({"helps": out, "commands": commands}, sys.stdout)
"""

WHERE_SCRIPT = """
import importlib, json, sys
from importlib.metadata import version, distribution
mods = {m: importlib.import_module(m).__file__ for m in sys.argv[1:]}
print(json.dumps({"modules": mods, "version": version("redigits"),
                  "dist": str(distribution("redigits")._path)}))
"""


def test_wheel_installs_and_runs_a_job(tmp_path, mnist_dir):
    cfg = _setup_cfg()
    log: list[str] = []
    src, dist, work = tmp_path / "src", tmp_path / "dist", tmp_path / "work"
    for folder in (src, dist, work):
        folder.mkdir()
    _copy_sources(cfg, src)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(PYTHONNOUSERSITE="1", REDIGITS_MNIST_DIR=str(mnist_dir), PIP_NO_INPUT="1",
               PIP_DISABLE_PIP_VERSION_CHECK="1")

    # 1. the wheel, and what it holds
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
          "--no-index", "-q", "-w", str(dist), str(src)], work, env, log)
    wheels = list(dist.glob("redigits-*.whl"))
    assert len(wheels) == 1, wheels
    with zipfile.ZipFile(wheels[0]) as zf:
        names = set(zf.namelist())
        entry_points = next(zf.read(n).decode() for n in names if n.endswith("entry_points.txt"))
    missing = sorted(_expected_files(cfg, src) - names)
    assert not missing, f"not in the wheel: {missing}"
    for required in ("prototxt/caffe.proto", "prototxt/networks/lenet.prototxt",
                     "prototxt/networks/alexnet.prototxt", "prototxt/networks/googlenet.prototxt",
                     "inference/server/page.html"):
        assert required in names
    assert not [n for n in names if n.startswith("tests/")]
    assert "redigits = redigits.cli:main" in entry_points
    pages = sorted(n for n in names if fnmatch.fnmatch(n, "*.html"))
    log.append(f"wheel {wheels[0].name}: {len(names)} files, {wheels[0].stat().st_size // 1024} KiB;"
               f" pages {', '.join(pages)}")

    # 2. a venv of its own; dependencies lent by a .pth line
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python, script = venv / "bin" / "python", venv / "bin" / "redigits"
    purelib = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()"
                                   "['purelib'])"], capture_output=True, text=True,
                                  check=True).stdout.strip())
    lent = sorted({*site.getsitepackages(), sysconfig.get_paths()["purelib"]})
    (purelib / "zz_lent_dependencies.pth").write_text("".join(f"{p}\n" for p in lent))
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
          "--no-index", "-q", str(wheels[0])], work, env, log)
    assert script.is_file()

    packages = [*_top_packages(cfg)]
    where = json.loads(_run([python, "-c", WHERE_SCRIPT, *packages], work, env, log))
    for module, file in where["modules"].items():
        assert Path(file).is_relative_to(purelib), f"{module} imported from {file}, not the wheel"
    assert Path(where["dist"]).is_relative_to(purelib)
    installed = purelib / "prototxt"
    assert (installed / "caffe.proto").is_file()
    assert len(list((installed / "networks").glob("*.prototxt"))) >= 3

    # 3. every command's --help, in one process of the installed code
    assert _run([script, "--version"], work, env, log) == f"redigits {where['version']}\n"
    top_help = _run([script, "--help"], work, env, log)
    answer = json.loads(_run([python, "-c", HELP_SCRIPT], work, env, log))
    helps = answer["helps"]          # the installed code's commands (the tree may have moved on)
    routed = {(package, target) for _, package, target, _ in helps.values()}
    for package, names in answer["commands"].items():
        assert names and {(package, name) for name in names} <= routed, package
    for words, (code, package, target, text) in helps.items():
        assert code == 0, words
        assert text.startswith(f"usage: python -m {package} {target}"), (words, text[:200])
        assert f"  {words} " in top_help
    log.append(f"--help of {len(helps)} commands: {', '.join(helps)}")

    # 4. a small real job with the installed script
    _run([script, "dataset", "mnist", "--out", "data/mnist", "--limit", "600", "--no-download",
          "--seed", "3"], work, env, log)
    _run([script, "dataset", "mnist-images", "--out", "data/files", "--limit", "40",
          "--no-download"], work, env, log)
    _run([script, "new", "--dataset", "data/mnist", "--network", "lenet", "--out", "jobs/lenet",
          "--epochs", "1", "--seed", "1"], work, env, log)
    _run([script, "train", "jobs/lenet/solver.prototxt", "--no-progress"], work, env, log)
    snapshots = sorted((work / "jobs/lenet").glob("snapshot_iter_*.caffemodel"))
    assert [p.name for p in snapshots] == ["snapshot_iter_8.caffemodel"]   # ceil(450 / 64)
    _run([script, "export", "--job", "jobs/lenet", "--out", "jobs/lenet/model.onnx"],
         work, env, log)
    images = [sorted(folder.glob("*.png"))[0].relative_to(work).as_posix()   # 3 classes
              for folder in sorted((work / "data/files/test").iterdir()) if folder.is_dir()][:3]
    result = json.loads(_run([script, "classify", "jobs/lenet/model.onnx", *images, "--json"],
                             work, env, log))
    assert [r["image"] for r in result["results"]] == images
    for r in result["results"]:
        probabilities = [p["probability"] for p in r["predictions"]]
        assert len(probabilities) == 5 and probabilities == sorted(probabilities, reverse=True)
        assert {p["label"] for p in r["predictions"]} <= set("0123456789")
    many = _run([script, "classify-many", "jobs/lenet/model.onnx", "data/files/test/test.txt"],
                work, env, log)
    log.append("classify-many: " + " | ".join(line.strip() for line in many.splitlines()[:2]))

    summary = "\n".join(log)
    print("\n" + summary)
    folder = Path(os.environ.get("REDIGITS_ARTIFACTS") or REPO / "artifacts") / "wheel"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "summary.txt").write_text(summary + "\n")
