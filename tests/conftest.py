import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from imgload import datasets  # noqa: E402

TINY_CIFAR = """
name = "tiny-cifar"
description = "5 x 20 training + 20 test images, CIFAR layout"
licence = "CC0-1.0"
layout = "cifar-python"
formats = ["png", "jpeg", "pickle-p2", "pickle-p5", "npy"]
batches = true
[source]
kind = "synthetic"
seed = 7
shape = [32, 32]
train = 100
test = 20
[sample]
default = 16
"""

TINY_LARGE = """
name = "tiny-large"
description = "6 images of 75x100"
licence = "CC0-1.0"
layout = "arrays"
formats = ["png", "jpeg"]
[source]
kind = "synthetic"
seed = 8
shape = [75, 100]
train = 5
test = 1
[sample]
default = 4
"""


@pytest.fixture(scope="session")
def manifests(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("manifests")
    (d / "tiny-cifar.toml").write_text(TINY_CIFAR)
    (d / "tiny-large.toml").write_text(TINY_LARGE)
    return {"small": d / "tiny-cifar.toml", "large": d / "tiny-large.toml"}


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    # under the repo's filesystem, not /tmp: page-cache tests need a disk-backed filesystem
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="session")
def tiny(manifests, data_dir) -> Path:
    return datasets.prepare(manifests["small"], data_dir)


@pytest.fixture(scope="session")
def tiny_large(manifests, data_dir) -> Path:
    return datasets.prepare(manifests["large"], data_dir)


@pytest.fixture
def clean_env(monkeypatch):
    for var in ("IMGLOAD_DATA_DIR", "IMGLOAD_PROFILE", "IMGLOAD_DATASET", "IMGLOAD_LARGE_DATASET"):
        monkeypatch.delenv(var, raising=False)
    return os.environ
