"""Fixtures for the deployment-export tests: a LeNet trained briefly on MNIST (the same recipe
as the inference tests, tests/inference/conftest.py), so that int8/fp16 agreement is measured on
a real model and its real validation images."""
from __future__ import annotations

import pytest

from tests.inference.conftest import LenetJob, make_trained_lenet, mnist_test  # noqa: F401 (a fixture)


@pytest.fixture(scope="session")
def trained_lenet(tmp_path_factory, mnist_dir) -> LenetJob:
    return make_trained_lenet(tmp_path_factory.mktemp("deploy-lenet"), mnist_dir)
