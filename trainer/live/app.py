"""The live training page's HTTP app (starlette, as `inference serve`):

    GET /                          the page (page.html: a canvas chart, no outside assets)
    GET /api/job                   the job's facts: network, dataset, solver (JobFacts)
    GET /api/state?since=VERSION   metrics, state, snapshots (JobState); {"version",
                                   "unchanged": true} when nothing changed since VERSION
    GET /api/snapshots/N/onnx      snapshot N exported to ONNX (once, then cached), as a download

Every answer is read from the job's files (job.py); the app holds no training state. Errors
are JSON `{"error": message}` with a 4xx/5xx status.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from .export import ExportFailed, OnnxExports
from .job import LiveJob

PAGE = Path(__file__).with_name("page.html")


def _error(message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    """404 / 405 and the like as JSON too."""
    return _error(str(getattr(exc, "detail", exc)), getattr(exc, "status_code", 500))


def create_app(job: LiveJob) -> Starlette:
    """The app serving `job` (module docstring)."""
    page = PAGE.read_text(encoding="utf-8")
    exports = OnnxExports(job)

    async def index(request: Request) -> HTMLResponse:
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})

    async def facts(request: Request) -> JSONResponse:
        return JSONResponse((await run_in_threadpool(job.facts)).as_dict())

    async def state(request: Request) -> JSONResponse:
        version = job.version()
        if request.query_params.get("since") == version:
            return JSONResponse({"version": version, "unchanged": True})
        return JSONResponse((await run_in_threadpool(job.state)).as_dict())

    async def onnx(request: Request) -> Response:
        try:
            iteration = int(request.path_params["iteration"])
        except ValueError:
            return _error("the snapshot is named by its iteration, a whole number, "
                          "e.g. /api/snapshots/1000/onnx", 400)
        try:
            path = await exports.get(iteration)
        except ExportFailed as exc:
            return _error(exc.message, exc.status)
        except Exception as exc:  # keep serving; say what broke
            return _error(f"{type(exc).__name__}: {exc}", 500)
        return FileResponse(path, media_type="application/octet-stream", filename=path.name)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        yield
        exports.close()

    app = Starlette(routes=[Route("/", index), Route("/api/job", facts),
                            Route("/api/state", state),
                            Route("/api/snapshots/{iteration}/onnx", onnx)],
                    lifespan=lifespan, exception_handlers={HTTPException: _http_error})
    app.state.job = job
    app.state.exports = exports
    return app
