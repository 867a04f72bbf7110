"""Shared fixtures: paths to the ground truth in ../shared, seeded generators."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import converter.net

# Every net the tests build in this process also runs its layers on meta tensors, and a top
# shape a builder declares must equal what its module computes (converter.net._declared_tops).
converter.net.SHAPES_BY_META = True

REPO = Path(__file__).resolve().parent.parent
_DEFAULTS = {
    "REDIGITS_REFERENCE_DIR": REPO.parent / "shared" / "reference",
    "REDIGITS_MNIST_DIR": REPO.parent / "shared" / "data" / "mnist",
}


def _shared_dir(var: str) -> Path:
    """The folder named by `var` (or its default beside the repo).

    Under CI a missing folder fails the test instead of skipping it, so that a broken setup
    cannot pass silently.
    """
    path = Path(os.environ.get(var) or _DEFAULTS[var])
    if not path.is_dir():
        msg = f"{var} points to {path}, which does not exist"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    return _shared_dir("REDIGITS_REFERENCE_DIR")


@pytest.fixture(scope="session")
def seed_job(reference_dir: Path) -> Path:
    return reference_dir / "seed-job"


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    return _shared_dir("REDIGITS_MNIST_DIR")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20190317)


@pytest.fixture(scope="session")
def lenet(tmp_path_factory, mnist_dir):
    """A LeNet trained briefly on MNIST and exported (tests/lenet_job.py), once per session."""
    from tests.lenet_job import make_trained_lenet
    return make_trained_lenet(tmp_path_factory.mktemp("trained-lenet"), mnist_dir)
