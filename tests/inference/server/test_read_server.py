"""POST /read on the live server: a composed string of MNIST test digits read as the library
reads it; no ink, tiny, huge, non-image and too-many-digits uploads answered 200 or 4xx,
never 5xx, and the server keeps serving."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from inference.read import read_digits
from inference.read.compose import compose_string
from inference.server import ServerSettings, ServerThread, create_app

from ..conftest import png_bytes
from .test_app import Client, multipart


@pytest.fixture(scope="module")
def server(lenet_classifier):
    settings = ServerSettings(max_upload_bytes=2_000_000, max_read_pixels=3000 * 1000,
                              max_read_pieces=60)
    with ServerThread(create_app(lenet_classifier, settings)) as url:
        yield url


def _string(mnist_test, seed: int, length: int):
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(mnist_test.labels), length)
    return compose_string(list(mnist_test.images[idx]), list(mnist_test.labels[idx]), "separated", rng)


def test_read_answers_as_the_library(server, lenet_classifier, mnist_test):
    composed = _string(mnist_test, 1, 5)
    status, answer = Client(server).predict(png_bytes(composed.image), "/read")
    expected = read_digits(lenet_classifier, composed.image)
    assert status == 200 and answer["text"] == expected.text and len(answer["text"]) == 5
    digits = answer["lines"][0]["cells"][0]["digits"]
    assert [d["box"] for d in digits] == [list(d.box) for d in expected.digits]
    assert all(len(d["top"]) == 3 for d in digits) and 0 < answer["confidence"] <= 1
    assert answer["table"] == [[expected.text]] and answer["size"] == list(composed.image.size)


def test_bad_input_is_4xx_or_a_clear_empty_reading(server, mnist_test):
    client = Client(server)
    status, answer = client.predict(png_bytes(Image.new("L", (400, 120), 255)), "/read")
    assert status == 200 and answer["lines"] == [] and answer["notes"] == ["no ink found"]
    status, answer = client.predict(png_bytes(Image.new("L", (1, 1), 0)), "/read")
    assert status == 200 and answer["lines"] == []
    status, answer = client.predict(png_bytes(Image.new("L", (4000, 1000), 255)), "/read")
    assert status == 413 and "pixels" in answer["error"]
    status, answer = client.predict(b"not an image at all", "/read")
    assert status == 415 and "error" in answer
    status, answer = client.request("POST", "/read", b"", "image/png")
    assert status == 400 and "empty" in answer["error"]
    status, answer = client.request("POST", "/read", b"x", "text/plain")
    assert status == 415
    many = [_string(mnist_test, 10 + k, 20).image for k in range(4)]     # 80 digits > 60 pieces
    page = Image.new("L", (max(m.width for m in many), 45 * len(many)), 255)
    for k, m in enumerate(many):
        page.paste(m, (0, 45 * k))
    status, answer = client.predict(png_bytes(page), "/read")
    assert status == 413 and "more than 60 pieces" in answer["error"]
    composed = _string(mnist_test, 2, 3)
    buffer = io.BytesIO()
    composed.image.convert("RGB").save(buffer, format="JPEG", quality=95)
    status, answer = client.predict(buffer.getvalue(), "/read")     # still serving; JPEG works
    assert status == 200 and len(answer["text"]) == 3
    status, health = client.request("GET", "/healthz")
    assert health["server_errors"] == 0 and health["readings"] >= 4


def test_read_refuses_a_model_of_other_classes(tmp_path):
    from inference import Classifier
    from ..tiny_models import tiny_onnx
    model = tiny_onnx(tmp_path / "rgb.onnx", {"labels": '["cat", "dog", "emu"]'}, channels=3,
                      classes=3)
    with ServerThread(create_app(Classifier(model, provider="cpu"))) as url:
        status, answer = Client(url).predict(png_bytes(Image.new("RGB", (60, 30), "white")), "/read")
    assert status == 400 and "digits" in answer["error"]
    assert multipart("image", b"")[1].startswith("multipart/form-data")
