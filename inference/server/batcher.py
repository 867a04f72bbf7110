"""Dynamic batching: requests that arrive together share one ONNX Runtime run.

A request hands its preprocessed C x H x W array to `submit` and awaits its row of
probabilities. The collector waits for a first item, then up to `max_wait_ms` more (or until
`max_batch` items are waiting) *for requests known to be on their way*: the app calls `expect()`
when a request comes in and `submit(..., expected=True)` (or `forget()`) when its input is ready,
so a lone request is not held back for company that is not coming. Then it waits for a free
runner (`concurrency` runs at a time, each in a
worker thread so the event loop keeps accepting requests), then takes up to `max_batch`
waiting items, including any that arrived meanwhile. Under load, batches grow by themselves:
while one runs, the next fills up. Nothing else is serialized; preprocessing runs on
Starlette's thread pool, per request.
"""
from __future__ import annotations

import asyncio
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

import numpy as np


@dataclass
class BatchStats:
    batches: int = 0
    images: int = 0
    failures: int = 0
    sizes: Counter = field(default_factory=Counter)   # batch size -> how many runs had it
    run_ms: float = 0.0

    def as_dict(self) -> dict:
        return {"batches": self.batches, "batched_images": self.images,
                "failed_batches": self.failures,
                "max_batch_seen": max(self.sizes, default=0),
                "mean_batch": round(self.images / self.batches, 3) if self.batches else 0,
                "batch_sizes": {str(k): v for k, v in sorted(self.sizes.items())},
                "mean_run_ms": round(self.run_ms / self.batches, 3) if self.batches else 0}


class Batcher:
    """Collects single inputs into batches for `run(N x C x H x W) -> N x K` (module docstring)."""

    def __init__(self, run: Callable[[np.ndarray], np.ndarray], max_batch: int = 32,
                 max_wait_ms: float = 5.0, concurrency: int = 1):
        self.run, self.max_batch = run, max(1, max_batch)
        self.max_wait = max(0.0, max_wait_ms) / 1000
        self.concurrency = max(1, concurrency)
        self.stats = BatchStats()
        self._pending: list[tuple[np.ndarray, asyncio.Future, float]] = []
        self._incoming = 0        # requests announced by expect() and not yet submitted
        self._arrived: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._runs: set[asyncio.Task] = set()
        self._executor: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        self._arrived = asyncio.Event()
        self._slots = asyncio.Semaphore(self.concurrency)
        self._executor = ThreadPoolExecutor(self.concurrency, thread_name_prefix="onnxruntime")
        self._task = asyncio.create_task(self._collect(), name="batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, *self._runs, return_exceptions=True)
        for _, future, _ in self._pending:
            if not future.done():
                future.set_exception(RuntimeError("the server is shutting down"))
        self._pending.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    def expect(self) -> None:
        """A request has arrived and will submit (or forget) once its input is ready."""
        self._incoming += 1

    def forget(self) -> None:
        """An expected request will not submit after all (bad input)."""
        self._incoming = max(0, self._incoming - 1)
        if self._arrived is not None:
            self._arrived.set()

    async def submit(self, x: np.ndarray, expected: bool = False) -> np.ndarray:
        """The model's output row for one preprocessed input (`expected`: announced by expect())."""
        if self._arrived is None:
            raise RuntimeError("the batcher is not started")
        if expected:
            self._incoming = max(0, self._incoming - 1)
        future = asyncio.get_running_loop().create_future()
        self._pending.append((x, future, time.monotonic()))
        self._arrived.set()
        return await future

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._pending:
                self._arrived.clear()
                await self._arrived.wait()
            deadline = self._pending[0][2] + self.max_wait
            while len(self._pending) < self.max_batch and self._incoming > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), remaining)
                except asyncio.TimeoutError:
                    break
            await self._slots.acquire()
            items = self._pending[:self.max_batch]
            del self._pending[:self.max_batch]
            task = loop.create_task(self._run(items))
            self._runs.add(task)
            task.add_done_callback(self._runs.discard)

    async def _run(self, items: list[tuple[np.ndarray, asyncio.Future, float]]) -> None:
        try:
            live = [(x, f) for x, f, _ in items if not f.done()]  # a client may have gone
            if not live:
                return
            start = time.perf_counter()
            try:
                out = await asyncio.get_running_loop().run_in_executor(
                    self._executor, self.run, np.stack([x for x, _ in live]))
            except Exception as exc:
                self.stats.failures += 1
                for _, future in live:
                    if not future.done():
                        future.set_exception(exc)
                return
            self.stats.batches += 1
            self.stats.images += len(live)
            self.stats.sizes[len(live)] += 1
            self.stats.run_ms += (time.perf_counter() - start) * 1000
            for row, (_, future) in zip(out, live):
                if not future.done():
                    future.set_result(row)
        finally:
            self._slots.release()
