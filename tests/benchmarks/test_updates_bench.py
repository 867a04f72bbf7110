"""benchmarks/updates.py: both paths over GoogLeNet's parameters, checked bit for bit, and the
tensor ops each dispatches (what becomes kernel launches on a GPU)."""
from __future__ import annotations

import json

from benchmarks.updates import main


def test_adam_update_benchmark_counts_ops_and_checks_the_bits(tmp_path, capsys):
    out = tmp_path / "updates.json"
    result = main(["--type", "Adam", "--runs", "1", "--classes", "7", "--out", str(out)])
    assert result["bit_identical"] is True
    assert result["params"] == 128 and json.loads(out.read_text())["fused_ops"] == \
        result["fused_ops"]
    # the loop: Adam's 9 ops per tensor (two moments, root, ratio, step) and w -= u, more with
    # weight decay; the fused path: a few _foreach ops per group, in cache-sized chunks on the CPU
    assert result["reference_ops"] >= 10 * 128
    assert result["fused_ops"] < result["reference_ops"] / 2
    assert "bit-identical: True" in capsys.readouterr().out
