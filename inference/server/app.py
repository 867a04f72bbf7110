"""The HTTP app: a drawing page, POST /predict with dynamic batching, /healthz, /model.

    GET  /          the page (inline JS/CSS): draw a digit, see the top-5 as bars
    POST /predict   multipart field `image` (or an image/* body) -> {"predictions": [{"label",
                    "probability"}...], "model", "ms"}; ?raw=1 skips the drawing normalization
                    (done for digit models only), ?top=N (default 5)
    POST /read      multipart field `image` (or an image/* body): a number, a row or a table of
                    handwritten digits -> {"text", "confidence", "lines": [{"text", "box",
                    "cells": [{"text", "box", "digits": [{"label", "probability", "box",
                    "top": [3 x {"label", "probability"}]}]}]}], "table", "notes", "ms"}
                    (inference/read); images up to `max_read_pixels`, pages up to
                    `max_read_pieces` pieces of digits or `max_read_windows` windows (413
                    beyond)
    GET  /healthz   {"status": "ok", ...request counts, batch-size histogram}
    GET  /model     the model's metadata and the server's limits

Bad input gets a 4xx JSON `{"error": ...}` and the server carries on.

Bounded work (ServerSettings): an upload is at most `max_upload_bytes` and `max_pixels` (by
default what a digit needs: 1024 x 1024 for a digit model, 2048 x 2048 for others), arrives
without pausing more than `read_timeout_s` (else 408, connection closed), and is decoded and
preprocessed by at most `decoders` requests at once (a drawing is reduced to at most 560 px a
side before anything else: drawing.py); at most `max_pending` requests are in progress. Past
those limits, or when memory runs out, the answer is 503 with Retry-After, never 500. A client
that goes away mid-upload is counted as a disconnect, not a server error.
"""
from __future__ import annotations

import contextlib
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from ..classifier import Classifier, top_k
from ..drawing import normalize_drawing
from ..errors import BadImageError
from ..images import decode_image
from .batcher import Batcher
from .limits import Gate, Saturated
from .uploads import read_upload

PAGE = Path(__file__).with_name("page.html")

DIGIT_MAX_PIXELS = 1024 * 1024      # a drawn digit needs far less (the page's canvas: 280 x 280)
GENERAL_MAX_PIXELS = 2048 * 2048    # a photo for a 224-256 px network


def default_decoders() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


@dataclass(frozen=True)
class ServerSettings:
    max_batch: int = 32
    max_wait_ms: float = 5.0
    concurrency: int = 1                 # ONNX Runtime runs at a time
    max_upload_bytes: int = 5 * 2**20
    max_pixels: int | None = None        # None: DIGIT_MAX_PIXELS or GENERAL_MAX_PIXELS by model
    top: int = 5
    decoders: int = 0                    # uploads decoded at once; 0: cores, at most 4
    max_pending: int = 64                # /predict requests in progress; more get 503
    queue_wait_s: float = 10.0           # the longest wait for a decoder before 503
    read_timeout_s: float = 10.0         # the longest pause within an upload (408)
    upload_timeout_s: float = 60.0       # the longest upload (408)
    head_timeout_s: float = 10.0         # the longest wait for a request's headers (closed)
    keep_alive_s: float = 5.0            # an idle keep-alive connection is closed after this
    max_connections: int = 1000          # uvicorn answers 503 itself beyond this
    retry_after_s: int = 1
    max_read_pixels: int = 4096 * 4096   # POST /read: a photo of a page (reduced to 2048 px)
    max_read_pieces: int = 2000          # POST /read: about 1,000 digits; more get 413
    max_read_windows: int = 60_000       # ... and by windows (a "none" class): about 500 digits

    def resolved(self, digit_model: bool) -> "ServerSettings":
        """These settings with the defaults that depend on the model and machine filled in."""
        return replace(self, max_pixels=self.max_pixels or (DIGIT_MAX_PIXELS if digit_model
                                                             else GENERAL_MAX_PIXELS),
                       decoders=self.decoders or default_decoders())


def _error(message: str, status: int, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    """404 / 405 and the like as JSON too."""
    status = getattr(exc, "status_code", 500)
    return _error(str(getattr(exc, "detail", exc)), status)


def create_app(classifier: Classifier, settings: ServerSettings = ServerSettings()) -> Starlette:
    """The Starlette app serving `classifier` (module docstring)."""
    settings = settings.resolved(classifier.info.is_digit_model)
    batcher = Batcher(classifier.probabilities, settings.max_batch, settings.max_wait_ms,
                      settings.concurrency)
    decoders = Gate(settings.decoders, max(0, settings.max_pending - settings.decoders),
                    settings.queue_wait_s, "decodes", settings.retry_after_s)
    counts = {"requests": 0, "predictions": 0, "client_errors": 0, "server_errors": 0,
              "busy": 0, "disconnects": 0, "timeouts": 0, "readings": 0}
    pending = 0
    started = time.time()
    page = PAGE.read_text(encoding="utf-8")
    background = classifier.drawing_background

    def prepare(data: bytes, normalize: bool) -> np.ndarray:
        image = decode_image(data, settings.max_pixels, "upload")
        if normalize:
            image = normalize_drawing(image, background)
        return classifier.preprocess(image)

    def busy(message: str, retry_after: int) -> JSONResponse:
        counts["busy"] += 1
        return _error(message, 503, {"Retry-After": str(retry_after)})

    def failure(exc: Exception) -> Response:
        """The answer to a request that failed after its upload began: 4xx for the client's
        faults, 503 when busy, 499 when it went away, 500 (and keep serving) for ours."""
        if isinstance(exc, BadImageError):
            if exc.status == 408:
                counts["timeouts"] += 1
                return _error(exc.message, 408, {"Connection": "close"})
            counts["client_errors"] += 1
            return _error(exc.message, exc.status)
        if isinstance(exc, Saturated):
            return busy(exc.message, exc.retry_after)
        if isinstance(exc, MemoryError):
            return busy("the server ran short of memory for this image; try again shortly",
                        settings.retry_after_s)
        if isinstance(exc, ClientDisconnect):  # nobody to answer, not our fault
            counts["disconnects"] += 1
            return Response(status_code=499)
        counts["server_errors"] += 1
        return _error(f"{type(exc).__name__}: {exc}", 500)

    async def index(request: Request) -> HTMLResponse:
        return HTMLResponse(page)

    async def predict(request: Request) -> Response:
        nonlocal pending
        start = time.perf_counter()
        counts["requests"] += 1
        try:
            top = int(request.query_params.get("top", settings.top))
            if not 1 <= top <= 1000:
                raise ValueError
        except ValueError:
            counts["client_errors"] += 1
            return _error("top must be a whole number from 1 to 1000", 400)
        if pending >= settings.max_pending:
            return busy(f"the server is busy ({pending} requests in progress); try again "
                        "shortly", settings.retry_after_s)
        raw = request.query_params.get("raw", "0").lower() in ("1", "true", "yes")
        normalize = classifier.info.is_digit_model and not raw
        pending += 1
        batcher.expect()
        submitted = False
        try:
            data = await read_upload(request, settings.max_upload_bytes, settings.read_timeout_s,
                                     settings.upload_timeout_s)
            async with decoders.hold():
                x = await run_in_threadpool(prepare, data, normalize)
            del data
            submitted = True
            probabilities = await batcher.submit(x, expected=True)
        except Exception as exc:  # noqa: BLE001 - every failure gets an answer (failure())
            return failure(exc)
        finally:
            pending -= 1
            if not submitted:
                batcher.forget()
        counts["predictions"] += 1
        predictions = [{"label": p.label, "probability": p.probability}
                       for p in top_k(probabilities, classifier.info, top)]
        return JSONResponse({"predictions": predictions, "model": classifier.name,
                             "normalized": normalize,
                             "ms": round((time.perf_counter() - start) * 1000, 3)})

    def read_page(data: bytes):
        from ..read import ReadLimits, read_digits
        image = decode_image(data, settings.max_read_pixels, "upload")
        limits = ReadLimits(max_pieces=settings.max_read_pieces, max_windows=settings.max_read_windows)
        return read_digits(classifier, image, limits)

    async def read(request: Request) -> Response:
        nonlocal pending
        start = time.perf_counter()
        counts["requests"] += 1
        if not classifier.info.is_digit_model:
            counts["client_errors"] += 1
            return _error("reading digits needs a model of the 10 digits (labels 0-9); this "
                          "model has other classes", 400)
        if pending >= settings.max_pending:
            return busy(f"the server is busy ({pending} requests in progress); try again "
                        "shortly", settings.retry_after_s)
        pending += 1
        try:
            data = await read_upload(request, settings.max_upload_bytes, settings.read_timeout_s,
                                     settings.upload_timeout_s)
            async with decoders.hold():
                reading = await run_in_threadpool(read_page, data)
        except Exception as exc:  # noqa: BLE001 - every failure gets an answer (failure())
            return failure(exc)
        finally:
            pending -= 1
        counts["readings"] += 1
        return JSONResponse({**reading.as_dict(), "model": classifier.name,
                             "ms": round((time.perf_counter() - start) * 1000, 3)})

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "model": classifier.name,
                             "provider": classifier.provider,
                             "uptime_s": round(time.time() - started, 1), **counts,
                             "in_progress": pending, "decoding": decoders.active,
                             "waiting_to_decode": decoders.waiting, **batcher.stats.as_dict()})

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
                            Route("/read", read, methods=["POST"]),
                            Route("/healthz", healthz), Route("/model", model)],
                    lifespan=lifespan, exception_handlers={HTTPException: _http_error})
    app.state.batcher = batcher
    app.state.classifier = classifier
    app.state.settings = settings
    return app
