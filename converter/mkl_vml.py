"""One serial call of each oneMKL vector-math function torch routes through, before any parallel
one: oneMKL 2024.2's first-call dispatch race.

On the CPU, torch computes contiguous float32/float64 `sqrt`, `exp`, `log`, `tanh`, `sin`, ... with
oneMKL's VML (`ATen/cpu/vml.h`), each intra-op thread calling e.g. `vmsSqrt(n, in, out, VML_HA)`
on its own chunk of the tensor (chunks of at least 2,048 values). oneMKL chooses each function's
kernel (instruction set and accuracy) on that function's first call. When that first call runs on
two threads at once, one of them can run a low-accuracy kernel over its whole chunk, although
high accuracy (`VML_HA`) was asked for; the next call is correct again (pytorch/pytorch#188792,
oneMKL 2024.2.0 to 2024.2.2; not seen from oneMKL 2025.0; torch 2.13's CPU wheel bundles 2024.2).

Seen here: the first Adam update of `benchmarks/updates.py`, in a pytest process where other tests
had already started torch's OpenMP threads. One thread's half of the first `sqrt` (conv1's
9,408 values) came out with relative errors up to 3.2e-4 (about 2,700 float32 ulps, where the
correct result is within 1), so w -= u differed from the fused path's by up to 3.2e-6; in 5
pytest runs of 16 (0 of 15 with the warm-up). In training the same race would give one chunk of
the first sqrt, exp, log or tanh of every fresh process the wrong rounding.

`warm_up` calls each function once on one value of each precision. One value is below the
parallel grain, so the call runs on the calling thread alone and oneMKL settles its choice before
any two threads can race for it. It costs about 1.5 ms, once per process (the `converter`
package runs it on import; trainer, inference and the benchmarks all import it).
"""
from __future__ import annotations

import functools

import torch

__all__ = ["VML_FUNCTIONS", "warm_up"]

VML_FUNCTIONS = ("acos", "asin", "atan", "cos", "erf", "erfc", "erfinv", "exp", "log", "log10",
                 "log2", "sin", "sqrt", "tan", "tanh", "trunc")
"""The torch functions named by `IMPLEMENT_VML_MKL` in torch's ATen/cpu/vml.h (float and double
each bind their own oneMKL function: vmsSqrt, vmdSqrt, ...)."""


@functools.cache
def warm_up() -> None:
    """Make oneMKL choose every VML kernel torch uses, serially, once per process."""
    if not torch.backends.mkl.is_available():
        return
    with torch.no_grad():
        for dtype in (torch.float32, torch.float64):
            one = torch.full((1,), 0.5, dtype=dtype)
            for name in VML_FUNCTIONS:
                getattr(torch, name)(one)
