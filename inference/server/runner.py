"""Running the app with uvicorn: in the foreground (`serve`) or on a background thread
(`ServerThread`, for tests and benchmarks; port 0 picks a free port)."""
from __future__ import annotations

import os
import socket
import threading
import time

import uvicorn
from starlette.applications import Starlette

from ..classifier import Classifier
from .app import ServerSettings, create_app
from .limits import guarded_protocol


def uvicorn_config(app: Starlette, access_log: bool = False, **extra) -> uvicorn.Config:
    """uvicorn's settings from the app's ServerSettings: idle keep-alive connections closed after
    `keep_alive_s`, a request head that does not arrive in `head_timeout_s` closes its
    connection (limits.py), at most `max_connections` connections and tasks (503 beyond)."""
    settings: ServerSettings = getattr(app.state, "settings", None) or ServerSettings()
    return uvicorn.Config(app, log_level="warning", access_log=access_log,
                          http=guarded_protocol(settings.head_timeout_s),
                          timeout_keep_alive=settings.keep_alive_s,
                          limit_concurrency=settings.max_connections, **extra)


def serve(model: str | os.PathLike, host: str = "127.0.0.1", port: int = 8000,
          settings: ServerSettings = ServerSettings(), provider: str | None = None,
          crop: str = "resize", access_log: bool = False) -> None:
    """Load `model` and serve it until interrupted."""
    classifier = Classifier(model, provider, crop, max_batch=settings.max_batch, spin=False)
    app = create_app(classifier, settings)
    shown = f"[{host}]" if ":" in host else host
    limits = app.state.settings
    print(f"serving {classifier.path} on {classifier.provider} at http://{shown}:{port}/ "
          f"(max batch {settings.max_batch}, max wait {settings.max_wait_ms:g} ms; images up to "
          f"{limits.max_pixels} pixels, {limits.decoders} decoded at once)", flush=True)
    uvicorn.Server(uvicorn_config(app, access_log, host=host, port=port)).run()


class ServerThread:
    """`with ServerThread(app) as url:` a live server on 127.0.0.1 for the block's duration."""

    def __init__(self, app: Starlette, host: str = "127.0.0.1", port: int = 0):
        self.app = app
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind((host, port))
        self.host, self.port = self.socket.getsockname()[:2]
        self.server = uvicorn.Server(uvicorn_config(app, backlog=1024))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]},
                                       name="uvicorn", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.01)
        return self.url

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.socket.close()
