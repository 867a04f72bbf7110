"""Building a net stays light: no layer's shape inference reaches PyTorch's Python meta kernels
or Python empty_like, whose first calls import torch._dynamo and sympy (together longer than
importing torch). Run in a fresh interpreter, where nothing has imported them yet."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from prototxt import STANDARD_NETWORKS

PROBE = """
import json, sys
from trainer.timing import standard_train_val, random_inputs
from converter import build_model
net, shapes = standard_train_val(sys.argv[1], 7, 3)
model = build_model(net, "TRAIN", input_shapes=shapes, seed=1)
heavy = lambda: sorted(m for m in ("torch._dynamo", "sympy") if m in sys.modules)
built = heavy()
model(**random_inputs(model, 0)).loss.backward()
print(json.dumps({"after_build": built, "after_step": heavy()}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("network", STANDARD_NETWORKS)
def test_standard_network_builds_without_heavy_imports(network):
    done = subprocess.run([sys.executable, "-c", PROBE, network], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.splitlines()[-1]) == {"after_build": [], "after_step": []}
