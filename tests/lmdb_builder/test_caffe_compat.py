"""Records as the real Caffe reads them: BVLC Caffe 1.0's compute_image_mean (OpenCV imdecode,
IMREAD_ANYCOLOR) on a redigits build of grey images into 3 channels (palette PNG records) and of
colour images must give 3-channel images whose mean is ours before rounding.

Runs where benchmarks/peers/install_caffe.sh put Caffe (/opt/caffe), else skipped: Caffe is not
a dependency of the project.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lmdb_builder.build import BuildOptions, build_dataset
from lmdb_builder.folders import plan_folder
from lmdb_builder.mean import read_mean
from lmdb_builder.plan import ImageSettings

TOOL = Path(os.environ.get("REDIGITS_CAFFE_BIN", "/opt/caffe/bin")) / "compute_image_mean"


@pytest.mark.skipif(not TOOL.is_file(), reason=f"no Caffe at {TOOL} (benchmarks/peers/install_caffe.sh)")
@pytest.mark.parametrize("colour", (False, True))
def test_caffe_reads_our_png_records(tmp_path, rng, colour):
    for c in ("a", "b"):
        (tmp_path / "imgs" / c).mkdir(parents=True)
        for i in range(12):
            shape = (9 + i, 13, 3) if colour else (9 + i, 13)
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(tmp_path / "imgs" / c / f"{i}.png")
    result = build_dataset(plan_folder(tmp_path / "imgs", pct_val=0, seed=1), tmp_path / "ds",
                           ImageSettings(21, 34, 3), BuildOptions(workers=1, progress=False))
    done = subprocess.run([str(TOOL), str(result.out / "train_db"), str(tmp_path / "caffe_mean.binaryproto")],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert done.returncode == 0, done.stdout[-2000:]
    theirs = read_mean(tmp_path / "caffe_mean.binaryproto")   # Caffe's float mean, BGR, unrounded
    ours = read_mean(result.out / "mean.binaryproto")
    assert theirs.shape == ours.shape == (3, 21, 34)
    assert np.abs(theirs - ours).max() <= 0.5 + 1e-4                # ours is rounded (DIGITS)
