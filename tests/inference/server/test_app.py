"""The live server (uvicorn on 127.0.0.1, a free port): pages and metadata, 16 clients x 200
requests answered exactly as the Classifier answers, batches > 1, and malformed uploads
refused with 4xx JSON while the server keeps serving."""
from __future__ import annotations

import http.client
import json
import struct
import threading
import uuid
import zlib
from urllib.parse import urlsplit

import numpy as np
import pytest

from inference.server import ServerSettings, ServerThread, create_app

from ..conftest import drawn_canvas, png_bytes

MAX_UPLOAD = 300_000
CLIENTS, REQUESTS = 16, 200


def multipart(field: str, data: bytes, content_type: str = "image/png",
              filename: str = "canvas.png") -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; "
            f"filename=\"{filename}\"\r\nContent-Type: {content_type}\r\n\r\n").encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


class Client:
    """One keep-alive connection, as a browser would hold."""

    def __init__(self, url: str):
        parts = urlsplit(url)
        self.connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)

    def request(self, method: str, path: str, body: bytes | None = None,
                content_type: str | None = None) -> tuple[int, dict]:
        headers = {"Content-Type": content_type} if content_type else {}
        self.connection.request(method, path, body=body, headers=headers)
        response = self.connection.getresponse()
        data = response.read()
        return response.status, (json.loads(data) if "json" in response.getheader("content-type", "") else
                                 {"text": data.decode()})

    def predict(self, image: bytes, path: str = "/predict") -> tuple[int, dict]:
        return self.request("POST", path, *multipart("image", image))

    def close(self) -> None:
        self.connection.close()


@pytest.fixture(scope="module")
def server(lenet_classifier):
    settings = ServerSettings(max_batch=32, max_wait_ms=5, max_upload_bytes=MAX_UPLOAD,
                              max_pixels=2000 * 2000)
    with ServerThread(create_app(lenet_classifier, settings)) as url:
        yield url


@pytest.fixture(scope="module")
def canvases(mnist_test, lenet_classifier):
    """Drawn digits as PNG bytes, with what the Classifier itself answers for each."""
    rng = np.random.default_rng(11)
    images = [drawn_canvas(mnist_test.images[i], rng) for i in range(8)]
    return [(png_bytes(im), lenet_classifier.classify_drawing(im)) for im in images]


def test_page_model_and_health(server):
    client = Client(server)
    status, page = client.request("GET", "/")
    assert status == 200 and "<canvas" in page["text"] and "pointerdown" in page["text"]
    assert "http://" not in page["text"] and "https://" not in page["text"]   # no CDN
    status, model = client.request("GET", "/model")
    assert status == 200 and model["labels"] == [str(d) for d in range(10)]
    assert model["input_shape"] == [1, 28, 28] and model["drawing_background"] == "white"
    assert model["limits"]["max_upload_bytes"] == MAX_UPLOAD
    status, health = client.request("GET", "/healthz")
    assert status == 200 and health["status"] == "ok" and health["provider"] == "cpu"
    assert client.request("GET", "/nowhere")[0] == 404
    client.close()


def test_predict_answers_like_the_classifier(server, canvases, lenet_classifier):
    client = Client(server)
    image, expected = canvases[0]
    status, answer = client.predict(image)
    assert status == 200 and answer["model"] == "model.onnx" and answer["normalized"] is True
    assert [p["label"] for p in answer["predictions"]] == [p.label for p in expected]
    np.testing.assert_allclose([p["probability"] for p in answer["predictions"]],
                               [p.probability for p in expected], atol=1e-5)
    status, raw = client.predict(image, "/predict?raw=1&top=3")
    assert status == 200 and raw["normalized"] is False and len(raw["predictions"]) == 3
    plain = lenet_classifier.classify_one(image, top=3)
    assert [p["label"] for p in raw["predictions"]] == [p.label for p in plain]
    status, bare = client.request("POST", "/predict", image, "image/png")    # a bare image body
    assert status == 200 and bare["predictions"] == answer["predictions"]
    client.close()


@pytest.mark.slow
def test_sixteen_clients_under_load(server, canvases):
    before = Client(server).request("GET", "/healthz")[1]
    failures: list[str] = []

    def client_thread(seed: int) -> None:
        client = Client(server)
        rng = np.random.default_rng(seed)
        try:
            for _ in range(REQUESTS):
                image, expected = canvases[int(rng.integers(len(canvases)))]
                status, answer = client.predict(image)
                got = answer.get("predictions", [])
                if status != 200 or [p["label"] for p in got] != [p.label for p in expected] or \
                        abs(got[0]["probability"] - expected[0].probability) > 1e-5:
                    failures.append(f"{status} {answer}")
        except Exception as exc:  # report, do not hang the other threads
            failures.append(repr(exc))
        finally:
            client.close()

    threads = [threading.Thread(target=client_thread, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not failures, failures[:3]
    health = Client(server).request("GET", "/healthz")[1]
    assert health["predictions"] - before["predictions"] == CLIENTS * REQUESTS
    assert health["max_batch_seen"] > 1 and health["max_batch_seen"] <= 32
    assert health["server_errors"] == 0


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims width x height (a decompression bomb's header) with no real pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + \
        chunk(b"IEND", b"")


def test_malformed_uploads_get_4xx_and_the_server_keeps_serving(server, canvases):
    client = Client(server)
    good, expected = canvases[1]
    noise = np.random.default_rng(0).integers(0, 256, MAX_UPLOAD + 10, dtype=np.uint8).tobytes()
    cases = {
        "empty file": (*multipart("image", b""), 400, "empty"),
        "not an image": (*multipart("image", b"hello, world" * 10), 415, "not an image"),
        "text part type": (*multipart("image", good, "text/plain"), 415, "not an image type"),
        "truncated png": (*multipart("image", good[: len(good) // 2]), 400, "decode"),
        "wrong field": (*multipart("picture", good), 400, "no field 'image'"),
        "huge upload": (*multipart("image", noise), 413, "limit"),
        "pixel bomb": (*multipart("image", png_header_only(30000, 30000)), 413, "pixels"),
        "json body": (b'{"image": 1}', "application/json", 415, "not accepted"),
        "broken multipart": (b"--x\r\nnonsense", "multipart/form-data; boundary=x", 400, "field"),
        "no body": (b"", None, 415, "not accepted"),
    }
    for name, (body, content_type, status, words) in cases.items():
        got, answer = client.request("POST", "/predict", body, content_type)
        assert (got, words in answer.get("error", "")) == (status, True), (name, got, answer)
        fresh = Client(server)        # a big refused upload may leave its connection unusable
        ok, answer = fresh.predict(good)
        assert ok == 200 and answer["predictions"][0]["label"] == expected[0].label, name
        fresh.close()
        client.close()
        client = Client(server)
    assert client.request("POST", "/predict?top=0", *multipart("image", good))[0] == 400
    assert client.request("GET", "/predict")[0] == 405
    health = client.request("GET", "/healthz")[1]
    assert health["status"] == "ok" and health["client_errors"] >= len(cases)
    client.close()
