"""Batcher: concurrent submits share runs, every caller gets its own row, failures reach the
callers of that run only, and a caller that gave up does not block the others."""
from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from inference.server.batcher import Batcher


def slow_sum(delay: float = 0.01):
    def run(batch: np.ndarray) -> np.ndarray:
        time.sleep(delay)          # a worker thread: the event loop keeps collecting meanwhile
        return batch.reshape(len(batch), -1).sum(axis=1, keepdims=True) * np.ones((1, 3))
    return run


def test_concurrent_submits_are_batched_and_answered_in_order():
    async def go():
        batcher = Batcher(slow_sum(), max_batch=8, max_wait_ms=5)
        await batcher.start()
        inputs = [np.full((2, 3), i, np.float32) for i in range(40)]
        outputs = await asyncio.gather(*(batcher.submit(x) for x in inputs))
        await batcher.stop()
        return outputs, batcher.stats
    outputs, stats = asyncio.run(go())
    for i, row in enumerate(outputs):
        np.testing.assert_array_equal(row, [6 * i] * 3)
    assert stats.images == 40 and max(stats.sizes) > 1 and max(stats.sizes) <= 8
    assert sum(size * n for size, n in stats.sizes.items()) == 40
    assert stats.as_dict()["max_batch_seen"] == max(stats.sizes)


def test_a_lone_request_does_not_wait_for_company():
    async def go():
        batcher = Batcher(slow_sum(0), max_batch=32, max_wait_ms=10_000)
        await batcher.start()
        batcher.expect()
        out = await asyncio.wait_for(batcher.submit(np.ones((1,), np.float32), expected=True), 5)
        await batcher.stop()
        return out, batcher.stats
    out, stats = asyncio.run(go())
    np.testing.assert_array_equal(out, [1, 1, 1])
    assert dict(stats.sizes) == {1: 1}


def test_expected_requests_are_waited_for_up_to_max_wait():
    async def go():
        batcher = Batcher(slow_sum(0), max_batch=32, max_wait_ms=2_000)
        await batcher.start()
        for _ in range(3):
            batcher.expect()
        first = asyncio.ensure_future(batcher.submit(np.array([1.0]), expected=True))
        await asyncio.sleep(0.05)            # still waiting: two more are on their way
        assert not first.done()
        second = asyncio.ensure_future(batcher.submit(np.array([2.0]), expected=True))
        await asyncio.sleep(0.01)
        batcher.forget()                     # the third had bad input: stop waiting for it
        results = await asyncio.wait_for(asyncio.gather(first, second), 1)
        await batcher.stop()
        return results, batcher.stats
    (first, second), stats = asyncio.run(go())
    assert first[0] == 1 and second[0] == 2 and dict(stats.sizes) == {2: 1}


def test_max_wait_bounds_the_wait_for_a_request_that_never_comes():
    async def go():
        batcher = Batcher(slow_sum(0), max_batch=32, max_wait_ms=30)
        await batcher.start()
        batcher.expect()
        batcher.expect()
        # the second expected request never submits; max_wait (30 ms) lets the first go
        out = await asyncio.wait_for(batcher.submit(np.array([1.0]), expected=True), 5)
        await batcher.stop()
        return out, batcher.stats
    out, stats = asyncio.run(go())
    assert out[0] == 1 and dict(stats.sizes) == {1: 1}


def test_a_failing_run_fails_its_callers_and_the_batcher_goes_on():
    calls = []

    def run(batch):
        calls.append(len(batch))
        if len(calls) == 1:
            raise RuntimeError("boom")
        return batch

    async def go():
        batcher = Batcher(run, max_batch=4, max_wait_ms=20)
        await batcher.start()
        first = await asyncio.gather(*(batcher.submit(np.array([i])) for i in range(3)),
                                     return_exceptions=True)
        second = await batcher.submit(np.array([9]))
        await batcher.stop()
        return first, second, batcher.stats
    first, second, stats = asyncio.run(go())
    assert all(isinstance(e, RuntimeError) and str(e) == "boom" for e in first)
    assert second.tolist() == [9] and stats.failures == 1 and stats.batches == 1


def test_cancelled_callers_are_skipped():
    gate = threading.Event()

    def run(batch):
        gate.wait(5)
        return batch

    async def go():
        batcher = Batcher(run, max_batch=2, max_wait_ms=0)
        await batcher.start()
        blocker = asyncio.ensure_future(batcher.submit(np.array([0])))   # occupies the runner
        await asyncio.sleep(0.05)
        gone = asyncio.ensure_future(batcher.submit(np.array([1])))
        await asyncio.sleep(0.01)
        gone.cancel()
        kept = asyncio.ensure_future(batcher.submit(np.array([2])))
        await asyncio.sleep(0.01)
        gate.set()
        result = await kept, await blocker
        await batcher.stop()
        return result, batcher.stats
    (kept, blocker), stats = asyncio.run(go())
    assert kept.tolist() == [2] and blocker.tolist() == [0]
    assert stats.images == 2                      # the cancelled one never ran


def test_submit_before_start_is_an_error():
    with pytest.raises(RuntimeError, match="not started"):
        asyncio.run(Batcher(slow_sum()).submit(np.zeros(1)))
