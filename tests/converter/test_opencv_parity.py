"""PyTorch vs OpenCV's independent Caffe importer (cv2.dnn.readNetFromCaffe) on our saved
.caffemodel: the seed job's GoogLeNet deploy and DIGITS' LeNet deploy."""
from __future__ import annotations

import numpy as np
import torch

from converter import build_model
from converter.caffemodel import save_caffemodel
from prototxt import DatasetFacts, build_network, digits_split, read_blob, write_text

import cv2  # opencv-python-headless < 5 (OpenCV 5 dropped the Caffe importer)


def opencv_forward(prototxt, caffemodel, x, blobs):
    net = cv2.dnn.readNetFromCaffe(str(prototxt), str(caffemodel))
    net.setInput(x)
    return dict(zip(blobs, net.forward(blobs)))


def test_googlenet_seed_deploy_matches_opencv(seed_job, tmp_path):
    deploy = seed_job / "deploy.prototxt"
    model = build_model(deploy, seed=7).eval()
    weights = tmp_path / "googlenet.caffemodel"
    save_caffemodel(model, weights)
    mean = np.asarray(read_blob(seed_job / "mean.binaryproto").data, np.float32).reshape(3, 256, 256)
    g = np.random.default_rng(11)
    image = g.uniform(0, 255, (2, 3, 256, 256)).astype(np.float32)
    x = (image - mean)[:, :, 16:240, 16:240]  # DIGITS' centre crop minus the mean image
    blobs = ["softmax", "loss3/classifier", "inception_4a/output", "pool1/norm1"]
    theirs = opencv_forward(deploy, weights, np.ascontiguousarray(x), blobs)
    with torch.no_grad():
        ours = model(torch.from_numpy(x), keep=blobs)
    diffs = {b: float(np.abs(ours[b].numpy() - theirs[b]).max()) for b in blobs}
    scale = {b: float(np.abs(theirs[b]).max()) for b in blobs}
    print("max abs diff vs OpenCV:", diffs, "max abs value:", scale)
    assert diffs["softmax"] <= 1e-4
    assert all(diffs[b] <= 1e-5 * max(1.0, scale[b]) for b in blobs)


def test_lenet_digits_deploy_matches_opencv(tmp_path):
    facts = DatasetFacts(num_classes=10, height=28, width=28, channels=1, dataset_dir="/data/mnist")
    deploy = digits_split(build_network("lenet"), facts).deploy
    write_text(deploy, tmp_path / "deploy.prototxt")
    model = build_model(deploy, seed=3).eval()
    save_caffemodel(model, tmp_path / "lenet.caffemodel")
    x = np.random.default_rng(5).uniform(-128, 128, (3, 1, 28, 28)).astype(np.float32)
    theirs = opencv_forward(tmp_path / "deploy.prototxt", tmp_path / "lenet.caffemodel", x,
                            ["softmax", "ip2"])
    with torch.no_grad():
        ours = model(torch.from_numpy(x), keep=["ip2"])
    assert np.abs(ours["softmax"].numpy() - theirs["softmax"]).max() <= 1e-5
    assert np.abs(ours["ip2"].numpy() - theirs["ip2"]).max() <= 1e-4
