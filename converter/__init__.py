"""Caffe networks as PyTorch graphs with Caffe's numerics; .caffemodel I/O; ONNX export.

    from converter import build_model
    model = build_model("deploy.prototxt")          # phase TEST, no stages
    out = model(torch.zeros(1, 3, 224, 224))
    out["softmax"]                                   # blobs by Caffe name
"""
from converter.errors import ConverterError
from converter.fillers import fill
from converter.net import CaffeNet, NetOutput, build_model
from converter.registry import REGISTRY, supported_types

__all__ = ["ConverterError", "fill", "CaffeNet", "NetOutput", "build_model", "REGISTRY",
           "supported_types"]
