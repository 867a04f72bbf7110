"""The live training page in a real browser (Debian's chromium through playwright, with the
inference browser test's fixture): `python -m trainer run --serve 0` trains LeNet on a small
MNIST set while the page's chart grows; then the ONNX button downloads the export.

Screenshots go to $REDIGITS_ARTIFACTS/trainer (default artifacts/trainer at the repository
root): live_training.png while training, live_done.png at the end."""
from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import onnx
import pytest

from ..inference.server.test_browser import REPO, browser  # noqa: F401 (the fixture)
from .live_job import make_lenet_job

SAMPLER = """() => { window.samples = [];
  setInterval(() => window.samples.push([Number(document.getElementById('chart').dataset.points),
      document.getElementById('state').textContent]), 100); }"""


@pytest.fixture
def artifacts() -> Path:
    folder = Path(os.environ.get("REDIGITS_ARTIFACTS") or REPO / "artifacts") / "trainer"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _start(solver: Path) -> tuple[subprocess.Popen, str, list[str]]:
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    child = subprocess.Popen([sys.executable, "-m", "trainer", "run", str(solver), "--serve", "0",
                              "--no-progress"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    urls: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in child.stdout:
            lines.append(line)
            if line.startswith("training page at "):
                urls.put(line.split()[-1])

    threading.Thread(target=read, daemon=True).start()
    try:
        return child, urls.get(timeout=120), lines
    except queue.Empty:
        child.kill()
        raise AssertionError("no page address from trainer run --serve:\n" + "".join(lines))


@pytest.mark.slow
def test_the_chart_grows_while_training_and_the_snapshot_downloads(browser, tmp_path, mnist_dir,  # noqa: F811
                                                                   artifacts):
    job = make_lenet_job(tmp_path, mnist_dir, 600, 12, 5, "--batch-size", "32",
                         "--snapshot-interval", "6")
    child, url, lines = _start(job / "solver.prototxt")
    context = browser.new_context(viewport={"width": 1100, "height": 820}, accept_downloads=True)
    try:
        page = context.new_page()
        page.goto(url)
        page.evaluate(SAMPLER)
        page.wait_for_function("document.getElementById('chart').dataset.points > 0",
                               timeout=120_000)
        page.wait_for_function("document.getElementById('chart').dataset.points >= 30 ||"
                               " document.getElementById('state').textContent === 'done'",
                               polling=100, timeout=120_000)
        if page.locator("#state").text_content() == "running":
            page.screenshot(path=str(artifacts / "live_training.png"), full_page=True)
            print(f"screenshot: {artifacts / 'live_training.png'}")
        page.wait_for_function("document.getElementById('state').textContent === 'done'",
                               polling=250, timeout=240_000)
        samples = page.evaluate("window.samples")
        while_running = sorted({n for n, state in samples if state == "running" and n > 0})
        assert len(while_running) >= 2, samples       # the chart changed during the run
        page.wait_for_timeout(300)
        page.screenshot(path=str(artifacts / "live_done.png"), full_page=True)
        print(f"screenshot: {artifacts / 'live_done.png'}")

        rows = (job / "metrics.csv").read_text().splitlines()[1:]
        drawn = page.evaluate("['chart', 'lr-chart'].map(id =>"
                              " Number(document.getElementById(id).dataset.points))")
        assert sum(drawn) == len(rows) and drawn[1] == sum(r.split(",")[2] == "lr" for r in rows)
        legend = page.locator("#legend span").all_text_contents()
        assert {"loss (train)", "loss (val)", "accuracy (val)", "learning rate"} <= set(legend)
        assert page.locator("#position").text_content().startswith("iteration 204 / 204")
        facts = page.locator("#solver").text_content()
        assert "max_iter204" in facts.replace(" ", "")
        iterations = page.locator("#snapshots tbody tr").evaluate_all(
            "rows => rows.map(r => Number(r.dataset.iteration))")
        assert iterations == [204, 102]

        with page.expect_download(timeout=180_000) as download:
            page.locator("#snapshots tbody tr").first.locator("button.onnx").click()
        saved = tmp_path / "downloaded.onnx"
        download.value.save_as(saved)
        assert download.value.suggested_filename == "snapshot_iter_204.onnx"
        assert saved.read_bytes() == (job / "snapshot_iter_204.onnx").read_bytes()
        meta = {p.key: p.value for p in onnx.load(str(saved)).metadata_props}
        assert json.loads(meta["labels"]) == [str(d) for d in range(10)]
        assert page.locator("#message").text_content() == ""
    finally:
        context.close()
        child.send_signal(signal.SIGINT)
        try:
            code = child.wait(timeout=60)
        except subprocess.TimeoutExpired:
            child.kill()
            raise
    assert code == 0, "".join(lines)
    assert "training finished; the page stays at" in "".join(lines)

