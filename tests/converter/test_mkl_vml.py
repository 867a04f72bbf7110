"""converter/mkl_vml.py: every oneMKL vector-math function torch uses is settled serially when
`converter` is imported, so the first parallel call of each is as exact as every later one."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from converter.mkl_vml import VML_FUNCTIONS

REPO = Path(__file__).resolve().parents[2]
VML_HEADER = Path(torch.__file__).parent / "include" / "ATen" / "cpu" / "vml.h"


def test_the_warm_up_names_exactly_the_functions_torch_sends_to_mkl():
    """Read from the installed torch's own header, so a torch that routes another function to
    oneMKL (or stops routing one) fails here rather than racing silently."""
    if not VML_HEADER.is_file():
        pytest.skip(f"{VML_HEADER} is not installed with this torch")
    routed = set()
    for line in VML_HEADER.read_text().splitlines():
        match = re.match(r"\s*IMPLEMENT_VML_MKL\((\w+),", line)     # commented-out lines don't
        if match:
            routed.add(match.group(1))
    assert routed == set(VML_FUNCTIONS)


FIRST_CALLS = """
import json, torch
import converter                      # the warm-up runs here
torch.set_num_threads(2)
(torch.rand(1 << 20) * 2).sum()       # torch's OpenMP threads are up, as in a running job
gen = torch.Generator().manual_seed(3)
worst = {}
for name in NAMES:
    x = torch.rand(48, 196, generator=gen) * 0.9 + 0.05     # two threads' chunks; every domain
    out = getattr(torch, name)(x).double()
    ref = getattr(torch, name)(x.double())
    worst[name] = float(((out - ref).abs() / ref.abs().clamp_min(1e-30)).max())   # trunc: 0
print(json.dumps(worst))
"""


def test_the_first_parallel_call_of_each_function_is_exact_to_float32():
    """A fresh process, two intra-op threads already running, each function's first call over
    two threads' chunks: within a few float32 ulps of the float64 result (oneMKL's race gave one
    chunk errors of 2,700 ulps)."""
    if not torch.backends.mkl.is_available():
        pytest.skip("this torch has no oneMKL")
    code = FIRST_CALLS.replace("NAMES", repr(list(VML_FUNCTIONS)))
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    worst = json.loads(proc.stdout.splitlines()[-1])
    assert set(worst) == set(VML_FUNCTIONS)
    ulp = 2.0 ** -23
    assert {name: err for name, err in worst.items() if not err <= 2 * ulp} == {}
