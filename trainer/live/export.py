"""The page's "download ONNX": each snapshot exported once, on demand, cached beside it.

The export is `python -m converter onnx --job FOLDER --snapshot N --out FILE`, run as that
command in a child process: the file is the one the command writes (checked against ONNX
Runtime, preprocessing in its metadata), and tracing and checking a net, seconds of CPU, never
holds the training process's interpreter. The child runs in its own session, so a Ctrl-C meant
for the training does not cut an export short; closing the app kills an export still running.
converter writes to a temporary name and renames, so `snapshot_iter_N.onnx` is whole or absent;
it counts as cached while it is newer than its .caffemodel. Two requests for one snapshot share
one export. The command's `error: ...` line becomes the answer's message (422).

A snapshot written outside the job folder (`trainer run --out DIR`), or with a snapshot_prefix
other than DIGITS' `snapshot`, is exported from the job folder's deploy.prototxt with that
.caffemodel and the job's labels.txt and mean.binaryproto (`--model --weights --labels --mean`).
"""
from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from .job import LiveJob, onnx_path

REPO_ROOT = Path(__file__).resolve().parents[2]  # where `converter` lives, for the child
ERROR_LINES = 20


class ExportFailed(Exception):
    """An export that could not be made; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def export_command(folder: Path, caffemodel: Path, iteration: int, out: Path) -> list[str]:
    """The converter command line that exports `caffemodel` of the job `folder` to `out`."""
    from converter.digits_job import snapshots
    command = [sys.executable, "-m", "converter", "onnx", "--out", str(out)]
    if snapshots(folder).get(iteration) == caffemodel:     # DIGITS' layout: --job
        return command + ["--job", str(folder), "--snapshot", str(iteration)]
    command += ["--model", str(folder / "deploy.prototxt"), "--weights", str(caffemodel)]
    for option, name in (("--labels", "labels.txt"), ("--mean", "mean.binaryproto")):
        if (folder / name).is_file():
            command += [option, str(folder / name)]
    return command


class OnnxExports:
    def __init__(self, job: LiveJob):
        self.job = job
        self._running: dict[Path, asyncio.Future] = {}
        self._children: set[asyncio.subprocess.Process] = set()

    async def get(self, iteration: int) -> Path:
        """The cached ONNX file of snapshot `iteration`, exporting it first when needed."""
        caffemodel = self.job.snapshot(iteration)
        if caffemodel is None:
            raise ExportFailed(404, f"no snapshot of iteration {iteration} in {self.job.out}")
        cached = onnx_path(caffemodel)
        if _fresh(cached, caffemodel):
            return cached
        task = self._running.get(cached)
        if task is None:
            task = asyncio.ensure_future(self._export(caffemodel, iteration, cached))
            self._running[cached] = task
            task.add_done_callback(lambda _: self._running.pop(cached, None))
        return await asyncio.shield(task)

    async def _export(self, caffemodel: Path, iteration: int, cached: Path) -> Path:
        command = export_command(self.job.folder, caffemodel, iteration, cached)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
        child = await asyncio.create_subprocess_exec(
            *command, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=env, start_new_session=True)
        self._children.add(child)
        try:
            _, stderr = await child.communicate()
        finally:
            self._children.discard(child)
        if child.returncode != 0:
            lines = stderr.decode("utf-8", "replace").strip().splitlines()
            said = [l for l in lines if l.startswith("error: ")] or lines[-ERROR_LINES:]
            message = "\n".join(said).removeprefix("error: ") or f"exit status {child.returncode}"
            status = 422 if child.returncode == 2 else 500
            raise ExportFailed(status, f"the export of {caffemodel.name} failed: {message}")
        return cached

    def close(self) -> None:
        """Kill exports still running (one killed while writing leaves at most a
        snapshot_iter_N.onnx.tmp-* file, a name that never looks whole)."""
        for child in list(self._children):
            if child.returncode is None:
                child.kill()


def _fresh(cached: Path, caffemodel: Path) -> bool:
    try:
        return cached.stat().st_mtime_ns >= caffemodel.stat().st_mtime_ns
    except OSError:
        return False
