"""What one server may spend, and what happens past it.

- `Gate`: at most `slots` requests at once through a costly step (decoding and preprocessing an
  upload: a 4-megapixel RGBA PNG is ~17 MB decoded, a few copies while converted), at most
  `queue` more waiting; past that, or after waiting `wait_s`, `Saturated`: the app answers 503
  with Retry-After instead of running out of memory and answering 500.
- `GuardedH11Protocol`: uvicorn's h11 protocol with a deadline for a request's head (request line
  and headers). uvicorn closes a keep-alive connection that sends nothing for `timeout_keep_alive`
  seconds after a response, but a fresh connection that sends nothing, or a head trickled a byte
  at a time (slowloris), holds its socket forever; here it is closed after `head_timeout_s`.
  The body's pace is the app's (uploads.py: read timeouts).
"""
from __future__ import annotations

import asyncio
import contextlib
from typing import AsyncIterator

from uvicorn.protocols.http.h11_impl import H11Protocol


class Saturated(Exception):
    """The server is at its limit for now; answer 503 with Retry-After."""

    def __init__(self, message: str, retry_after: int = 1):
        self.message = message
        self.retry_after = retry_after
        super().__init__(message)


class Gate:
    """At most `slots` holders at once and `queue` waiting (module docstring)."""

    def __init__(self, slots: int, queue: int, wait_s: float, what: str, retry_after: int = 1):
        self.slots, self.queue, self.wait_s = max(1, slots), max(0, queue), wait_s
        self.what, self.retry_after = what, retry_after
        self.active = 0
        self.waiting = 0
        self.refused = 0
        self._semaphore: asyncio.Semaphore | None = None

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        if self._semaphore is None:       # made in the server's event loop, on first use
            self._semaphore = asyncio.Semaphore(self.slots)
        if self._semaphore.locked() and self.waiting >= self.queue:
            self.refused += 1
            raise Saturated(f"the server is busy ({self.active} {self.what} running, "
                            f"{self.waiting} waiting); try again shortly", self.retry_after)
        self.waiting += 1
        try:
            await asyncio.wait_for(self._semaphore.acquire(), self.wait_s)
        except asyncio.TimeoutError:
            self.refused += 1
            raise Saturated(f"the server is busy (waited {self.wait_s:g} s for a free slot); "
                            "try again shortly", self.retry_after) from None
        finally:
            self.waiting -= 1
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1
            self._semaphore.release()


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request head does not arrive in
    `head_timeout_s` seconds (from the connection's start, or from the end of its last response)."""

    head_timeout_s = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_deadline: asyncio.TimerHandle | None = None
        self._arm_head_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        if getattr(self, "_head_deadline", None) is not None:
            self._head_deadline.cancel()
        super().connection_lost(exc)

    def _arm_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
        self._head_deadline = self.loop.call_later(self.head_timeout_s, self._head_late)

    def _head_late(self) -> None:
        self._head_deadline = None
        if self.cycle is not None and not self.cycle.response_complete:
            return                       # a request is being answered: its head came in time
        if not self.transport.is_closing():
            self.transport.close()


def guarded_protocol(head_timeout_s: float) -> type[GuardedH11Protocol]:
    """The protocol class with this head deadline (uvicorn takes a class, not an instance)."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"head_timeout_s": head_timeout_s})
