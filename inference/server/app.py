"""The HTTP app: a drawing page, POST /predict with dynamic batching, /healthz, /model.

    GET  /          the page (inline JS/CSS): draw a digit, see the top-5 as bars
    POST /predict   multipart field `image` (or an image/* body) -> {"predictions": [{"label",
                    "probability"}...], "model", "ms"}; ?raw=1 skips the drawing normalization
                    (done for digit models only), ?top=N (default 5)
    GET  /healthz   {"status": "ok", ...request counts, batch-size histogram}
    GET  /model     the model's metadata and the server's limits

Bad input gets a 4xx JSON `{"error": ...}` and the server carries on.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from ..classifier import Classifier, top_k
from ..drawing import normalize_drawing
from ..errors import BadImageError
from ..images import decode_image
from .batcher import Batcher
from .uploads import read_upload

PAGE = Path(__file__).with_name("page.html")


@dataclass(frozen=True)
class ServerSettings:
    max_batch: int = 32
    max_wait_ms: float = 5.0
    concurrency: int = 1                 # ONNX Runtime runs at a time
    max_upload_bytes: int = 5 * 2**20
    max_pixels: int = 4096 * 4096
    top: int = 5


def _error(message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    """404 / 405 and the like as JSON too."""
    status = getattr(exc, "status_code", 500)
    return _error(str(getattr(exc, "detail", exc)), status)


def create_app(classifier: Classifier, settings: ServerSettings = ServerSettings()) -> Starlette:
    """The Starlette app serving `classifier` (module docstring)."""
    batcher = Batcher(classifier.probabilities, settings.max_batch, settings.max_wait_ms,
                      settings.concurrency)
    counts = {"requests": 0, "predictions": 0, "client_errors": 0, "server_errors": 0}
    started = time.time()
    page = PAGE.read_text(encoding="utf-8")
    background = classifier.drawing_background

    def prepare(data: bytes, normalize: bool) -> np.ndarray:
        image = decode_image(data, settings.max_pixels, "upload")
        if normalize:
            image = normalize_drawing(image, background)
        return classifier.preprocess(image)

    async def index(request: Request) -> HTMLResponse:
        return HTMLResponse(page)

    async def predict(request: Request) -> JSONResponse:
        start = time.perf_counter()
        counts["requests"] += 1
        try:
            top = int(request.query_params.get("top", settings.top))
            if not 1 <= top <= 1000:
                raise ValueError
        except ValueError:
            counts["client_errors"] += 1
            return _error("top must be a whole number from 1 to 1000", 400)
        raw = request.query_params.get("raw", "0").lower() in ("1", "true", "yes")
        normalize = classifier.info.is_digit_model and not raw
        batcher.expect()
        submitted = False
        try:
            data = await read_upload(request, settings.max_upload_bytes)
            x = await run_in_threadpool(prepare, data, normalize)
            submitted = True
            probabilities = await batcher.submit(x, expected=True)
        except BadImageError as exc:
            counts["client_errors"] += 1
            return _error(exc.message, exc.status)
        except Exception as exc:  # keep serving; say what broke
            counts["server_errors"] += 1
            return _error(f"{type(exc).__name__}: {exc}", 500)
        finally:
            if not submitted:
                batcher.forget()
        counts["predictions"] += 1
        predictions = [{"label": p.label, "probability": p.probability}
                       for p in top_k(probabilities, classifier.info, top)]
        return JSONResponse({"predictions": predictions, "model": classifier.name,
                             "normalized": normalize,
                             "ms": round((time.perf_counter() - start) * 1000, 3)})

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "model": classifier.name,
                             "provider": classifier.provider,
                             "uptime_s": round(time.time() - started, 1), **counts,
                             **batcher.stats.as_dict()})

    async def model(request: Request) -> JSONResponse:
        return JSONResponse({"name": classifier.name, "provider": classifier.provider,
                             "drawing_background": background, **classifier.info.describe(),
                             "limits": asdict(settings)})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        await batcher.start()
        yield
        await batcher.stop()

    app = Starlette(routes=[Route("/", index), Route("/predict", predict, methods=["POST"]),
                            Route("/healthz", healthz), Route("/model", model)],
                    lifespan=lifespan, exception_handlers={HTTPException: _http_error})
    app.state.batcher = batcher
    app.state.classifier = classifier
    return app
