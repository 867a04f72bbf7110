"""ONNX Runtime classification: command line and a draw-a-digit web app.

    from inference import Classifier
    clf = Classifier("model.onnx")            # from `python -m converter onnx --job MODEL_DIR`
    for p in clf.classify_one("digit.png"):   # DIGITS' Classify One preprocessing and top-5
        print(p.label, p.percent())

    python -m inference classify model.onnx digit.png
    python -m inference serve model.onnx      # http://127.0.0.1:8000: draw a digit
"""
from inference.classifier import Classifier, Prediction, top_k
from inference.drawing import drawing_background, normalize_drawing
from inference.errors import BadImageError, InferenceError
from inference.metadata import ModelInfo, model_info
from inference.preprocess import Preprocessor


def serve(model: str, host: str = "127.0.0.1", port: int = 8000, **options) -> None:
    """`python -m inference serve` from Python (inference/server/runner.py has the options);
    imported on use, so that `import inference` does not load the web stack."""
    from inference.server import serve as run
    run(model, host, port, **options)


__all__ = ["Classifier", "serve", "Prediction", "top_k", "drawing_background", "normalize_drawing",
           "BadImageError", "InferenceError", "ModelInfo", "model_info", "Preprocessor"]
