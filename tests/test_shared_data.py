"""The ground-truth folders: present here, and a missing one fails (not skips) under CI."""
from __future__ import annotations

import pytest

from tests import conftest


def test_reference_and_mnist_are_present(reference_dir, mnist_dir):
    assert (reference_dir / "seed-job" / "original.prototxt").is_file()
    assert (mnist_dir / "train-images-idx3-ubyte.gz").is_file()


def test_missing_folder_fails_under_ci(monkeypatch, tmp_path):
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("REDIGITS_MNIST_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(pytest.fail.Exception, match="nowhere"):
        conftest._shared_dir("REDIGITS_MNIST_DIR")


def test_missing_folder_skips_outside_ci(monkeypatch, tmp_path):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("REDIGITS_MNIST_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(pytest.skip.Exception):
        conftest._shared_dir("REDIGITS_MNIST_DIR")
