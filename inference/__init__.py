"""ONNX Runtime classification: command line and a draw-a-digit web app."""
