"""Caffe networks as PyTorch graphs with Caffe's numerics; .caffemodel I/O; ONNX export.

    from converter import build_model, load_caffemodel, export_onnx
    model = build_model("deploy.prototxt")           # phase TEST, no stages
    load_caffemodel(model, "snapshot_iter_2814.caffemodel")
    out = model(torch.zeros(1, 3, 224, 224))
    out["softmax"]                                    # blobs by Caffe name
"""
from converter.caffemodel import LoadReport, load_caffemodel, save_caffemodel
from converter.errors import ConverterError, ShapeError
from converter.fillers import fill
from converter.layers.dummy_data import dummy_data_values
from converter.mkl_vml import warm_up as _warm_up_mkl_vml
from converter.net import CaffeNet, NetOutput, build_model
from converter.onnx_export import ExportReport, export_job, export_onnx
from converter.registry import REGISTRY, supported_types
from converter.shapes import infer_shapes

__all__ = ["LoadReport", "load_caffemodel", "save_caffemodel", "ConverterError", "ShapeError",
           "fill", "dummy_data_values", "CaffeNet", "NetOutput", "build_model", "ExportReport", "export_job",
           "export_onnx", "REGISTRY", "supported_types", "infer_shapes"]

_warm_up_mkl_vml()      # before any parallel torch op: converter/mkl_vml.py
