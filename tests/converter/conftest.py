"""Fixtures for the deployment-export tests: the session's trained LeNet (tests/conftest.py),
so that int8/fp16 agreement is measured on a real model and its real validation images."""
from __future__ import annotations

import pytest

from tests.inference.conftest import mnist_test  # noqa: F401 (a fixture)
from tests.lenet_job import LenetJob


@pytest.fixture(scope="session")
def trained_lenet(lenet) -> LenetJob:
    return lenet
