"""Running the live page: beside a training (`LiveServer`, a uvicorn thread in the trainer's
process) or on its own (`watch`, in the foreground until Ctrl-C).

Beside a training the server only reads files and answers a poll a second, so the training
loop barely notices it; the one heavy request, an ONNX export, runs in a child process
(export.py). uvicorn on a thread installs no signal handlers, so Ctrl-C still reaches the
solver, which snapshots and stops as without the page. Port 0 picks a free port; the default
host 127.0.0.1 keeps the page on this machine (`--host 0.0.0.0` opens it).
"""
from __future__ import annotations

import socket
import threading
import time

import uvicorn

from . import DEFAULT_PORT
from .app import create_app
from .job import LiveJob


def url_of(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def _config(app, **extra) -> uvicorn.Config:
    return uvicorn.Config(app, log_level="warning", access_log=False, timeout_keep_alive=5,
                          **extra)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot serve the page on {host}:{port}: {exc.strerror or exc}; "
                      "give another port (0 picks a free one)") from None
    sock.listen(128)
    return sock


class LiveServer:
    """`with LiveServer(job) as url:` the page served from a thread for the block's duration.
    The socket is bound in the constructor, so a taken port fails before training starts."""

    def __init__(self, job: LiveJob, host: str = "127.0.0.1", port: int = 0):
        self.socket = _bind(host, port)
        self.host, self.port = host, self.socket.getsockname()[1]
        self.server = uvicorn.Server(_config(create_app(job)))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]},
                                       name="live-page", daemon=True)

    @property
    def url(self) -> str:
        return url_of(self.host, self.port)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.socket.close()
                raise RuntimeError("the live page's server did not start")
            time.sleep(0.01)
        return self.url

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.socket.close()


def watch(job: LiveJob, host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> None:
    """Serve `job`'s page in the foreground until interrupted."""
    sock = _bind(host, port)
    print(f"watching {job.out}: page at {url_of(host, sock.getsockname()[1])} "
          "(Ctrl-C to stop)", flush=True)
    try:
        uvicorn.Server(_config(create_app(job))).run(sockets=[sock])
    finally:
        sock.close()
