"""Caffe networks as PyTorch graphs with Caffe's numerics; .caffemodel I/O; ONNX export."""
