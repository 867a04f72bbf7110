"""OpenCV's Caffe importer (cv2.dnn.readNetFromCaffe) on a one-layer prototxt written in the
layer's own spelling, with our saved .caffemodel when the layer has blobs."""
from __future__ import annotations

import cv2  # opencv-python-headless < 5 (OpenCV 5 dropped the Caffe importer)
import numpy as np

from converter.caffemodel import save_caffemodel


def opencv_forward(layer: str, inputs: dict[str, np.ndarray], tmp_path, model=None,
                   name: str = "l") -> np.ndarray:
    """Top of layer `name` (`layer` is the inside of layer { } without name/bottom/top) fed by
    net inputs `inputs`; `model` (our CaffeNet of the same text) supplies the weights."""
    shapes = "".join(f'input: "{n}" input_shape {{ {" ".join(f"dim: {d}" for d in a.shape)} }}\n'
                     for n, a in inputs.items())
    bottoms = " ".join(f'bottom: "{n}"' for n in inputs)
    prototxt = tmp_path / "opencv.prototxt"
    prototxt.write_text(f'{shapes}layer {{ name: "{name}" {bottoms} top: "y" {layer} }}\n')
    weights = ""
    if model is not None:
        weights = str(tmp_path / "opencv.caffemodel")
        save_caffemodel(model.float(), weights)
    net = cv2.dnn.readNetFromCaffe(str(prototxt), weights)
    for n, a in inputs.items():
        net.setInput(np.ascontiguousarray(a, dtype=np.float32), n)
    return net.forward(name)
