"""The live page's server over real HTTP (a LiveServer on 127.0.0.1): the page, the facts, the
state poll, the ONNX download (exported once, as `converter onnx --job` does, then cached),
JSON errors; and the command lines (`run --serve`, `watch`)."""
from __future__ import annotations

import json
import shutil
import socket
import threading
import urllib.error
import urllib.request

import numpy as np
import onnx
import pytest

from converter.onnx_export import export_job, ort_session
from trainer.__main__ import main
from trainer.live.job import LiveJob
from trainer.live.runner import LiveServer
from trainer.metrics import HEADER
from trainer.solver import Options, Solver

from . import tiny


def get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=120) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def get_json(url: str) -> tuple[int, dict]:
    status, headers, body = get(url)
    assert headers["content-type"].startswith("application/json"), body[:200]
    return status, json.loads(body)


DEPLOY = """name: "tiny"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 1 dim: 6 dim: 10 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 3 } }
layer { name: "prob" type: "Softmax" bottom: "ip" top: "prob" }
"""


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """The tiny linear net trained 20 iterations, snapshots at 10 and 20, with the deploy net
    the export reads; labels and mean come from the dataset job (no info.json, as on a DIGITS
    server), found through train_val.prototxt."""
    folder = tmp_path_factory.mktemp("live-app")
    tiny.make_dataset(folder / "data", np.random.default_rng(11), n_train=30, n_val=10)
    solver = tiny.write_job(folder / "job", folder / "data", max_iter=20, display=2,
                            test_interval=10, test_iter=2, snapshot=10)
    (solver.parent / "deploy.prototxt").write_text(DEPLOY)
    Solver(solver, Options(echo=False, progress=False)).solve()
    return solver.parent


@pytest.fixture(scope="module")
def url(job):
    with LiveServer(LiveJob(job)) as url:
        yield url


@pytest.mark.slow
def test_page_facts_and_state(url, job):
    status, headers, body = get(url)
    assert status == 200 and headers["content-type"].startswith("text/html")
    page = body.decode()
    assert '<canvas id="chart"' in page and "http://" not in page.replace(url, "")  # no CDN
    status, facts = get_json(url + "api/job")
    assert status == 200 and facts["name"] == "job" and facts["folder"] == str(job)
    assert facts["solver"]["base_lr"] == "0.05" and facts["solver"]["snapshot"] == "10"
    assert facts["dataset"]["train source"] == str(job.parent / "data" / "train_db")
    assert facts["network"]["layers"] == "3 (1 Data, 1 InnerProduct, 1 SoftmaxWithLoss)"

    status, state = get_json(url + "api/state")
    assert status == 200 and state["state"] == "done"
    assert state["iteration"] == 20 and state["max_iter"] == 20
    assert [s["iteration"] for s in state["snapshots"]] == [10, 20]
    rows = (job / "metrics.csv").read_text().splitlines()
    assert rows[0].split(",") == HEADER
    points = {(s["phase"], s["name"]): s["points"] for s in state["series"]}
    for row in rows[1:]:
        iteration, epoch, phase, name, value = row.split(",")
        assert [float(epoch), int(iteration), float(value)] in points[(phase, name)]
    assert sum(map(len, points.values())) == len(rows) - 1
    status, same = get_json(url + f"api/state?since={state['version']}")
    assert same == {"version": state["version"], "unchanged": True}


@pytest.mark.slow
def test_onnx_download_is_the_converter_export_and_is_cached(url, job, tmp_path):
    cached = job / "snapshot_iter_10.onnx"
    assert not cached.exists()
    results = []
    # two clicks at once share one export
    threads = [threading.Thread(target=lambda: results.append(get(url + "api/snapshots/10/onnx")))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r[0] for r in results] == [200, 200] and results[0][2] == results[1][2]
    status, headers, body = results[0]
    assert headers["content-disposition"] == 'attachment; filename="snapshot_iter_10.onnx"'
    assert cached.read_bytes() == body
    assert [p.name for p in job.iterdir() if ".onnx.tmp" in p.name] == []
    model = onnx.load_from_string(body)
    meta = {p.key: p.value for p in model.metadata_props}
    assert json.loads(meta["labels"]) == ["class0", "class1", "class2"]
    # the same file `python -m converter onnx --job JOB --snapshot 10` writes (same outputs)
    ours = export_job(tmp_path / "cli.onnx", job=job, snapshot=10).path
    x = np.random.default_rng(4).normal(0, 60, (3, 1, 6, 10)).astype(np.float32)
    a = ort_session(body).run(None, {model.graph.input[0].name: x})[0]
    b = ort_session(ours.read_bytes()).run(None, {model.graph.input[0].name: x})[0]
    np.testing.assert_array_equal(a, b)
    stamp = cached.stat().st_mtime_ns
    status, _, again = get(url + "api/snapshots/10/onnx")
    assert status == 200 and again == body and cached.stat().st_mtime_ns == stamp  # not redone
    _, state = get_json(url + "api/state")
    assert [s["onnx"] for s in state["snapshots"]] == [True, False]


@pytest.mark.slow
def test_errors_are_json(url, job, tmp_path):
    status, answer = get_json(url + "api/snapshots/7/onnx")
    assert status == 404 and "no snapshot of iteration 7" in answer["error"]
    status, answer = get_json(url + "api/snapshots/ten/onnx")
    assert status == 400 and "whole number" in answer["error"]
    status, answer = get_json(url + "api/nothing")
    assert status == 404 and answer["error"]
    # a snapshot that does not fit the deploy net: the converter's message, 422, nothing cached
    broken = tmp_path / "broken"
    shutil.copytree(job, broken, ignore=shutil.ignore_patterns("*.onnx", "tensorboard"))
    (broken / "deploy.prototxt").write_text(DEPLOY)
    data = (broken / "snapshot_iter_20.caffemodel").read_bytes()
    (broken / "snapshot_iter_20.caffemodel").write_bytes(data[: len(data) // 3])
    with LiveServer(LiveJob(broken)) as other:
        status, answer = get_json(other + "api/snapshots/20/onnx")
    assert status == 422, answer
    assert answer["error"].startswith("the export of snapshot_iter_20.caffemodel failed: ")
    assert "snapshot_iter_20.caffemodel" in answer["error"][60:], answer
    assert not (broken / "snapshot_iter_20.onnx").exists()


@pytest.mark.slow
def test_snapshots_outside_the_job_folder_export_from_its_deploy_net(job, tmp_path):
    """trainer run --out DIR: snapshots and metrics in DIR, the nets in the job folder."""
    out = tmp_path / "out"
    out.mkdir()
    (job / "labels.txt").write_text("zero\none\ntwo\n")
    shutil.copy(job / "snapshot_iter_20.caffemodel", out / "mine_iter_20.caffemodel")
    with LiveServer(LiveJob(job, out=out)) as url:
        _, state = get_json(url + "api/state")
        assert state["state"] == "not started" and state["series"] == []
        assert [s["file"] for s in state["snapshots"]] == ["mine_iter_20.caffemodel"]
        status, _, body = get(url + "api/snapshots/20/onnx")
    assert status == 200 and (out / "mine_iter_20.onnx").read_bytes() == body
    meta = {p.key: p.value for p in onnx.load_from_string(body).metadata_props}
    assert json.loads(meta["labels"]) == ["zero", "one", "two"]  # the job folder's labels.txt
    (job / "labels.txt").unlink()


def test_watch_refuses_what_is_not_a_job(tmp_path, capsys):
    assert main(["watch", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no such job folder: ") and "Traceback" not in err
    assert main(["watch", str(tmp_path)]) == 2
    assert "has no solver.prototxt, metrics.csv or caffe_output.log" in capsys.readouterr().err


def test_a_taken_port_is_one_error_line(tmp_path, capsys, rng):
    tiny.make_dataset(tmp_path / "data", rng)
    solver = tiny.write_job(tmp_path / "job", tmp_path / "data")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert main(["run", str(solver), "--serve", str(port), "--no-progress"]) == 2
        assert main(["watch", str(solver.parent), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.count(f"error: cannot serve the page on 127.0.0.1:{port}: ") == 2
    assert "give another port" in err and "Traceback" not in err
    assert not (solver.parent / "metrics.csv").exists()     # refused before training


def test_serve_takes_a_port_number(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["run", str(tmp_path / "solver.prototxt"), "--serve", "http"])
    assert "a port is a whole number from 0 to 65535" in capsys.readouterr().err
