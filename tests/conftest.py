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


# A real asv run of a few benchmarks in two library stacks on the tiny datasets, shared by
# the report and site tests. The oldest stack lacks simplejpeg, so some results are n/a.
TWO_STACK_BENCHMARKS = [
    r"SmallImages.time_decode\('(cv2|simplejpeg)', 'jpeg', '(sequential|threads-2)'",
    r"Overhead.(time_bare_loop|time_sequential|track_sequential_over_bare)\('cv2', 'jpeg'",
    r"^bench_sample",
]


def asv_config(tmp: Path, stacks: list[dict], **dirs) -> Path:
    """An asv config for the real suite with only `stacks`, writing under `tmp`."""
    import json

    conf = json.loads((REPO / "asv.conf.json").read_text())
    conf.update(repo=str(REPO), benchmark_dir=str(REPO / "benchmarks"), env_dir="env", results_dir="results",
                html_dir="html", include=stacks,
                branches=["HEAD"])  # publish graphs the checked-out commit, whatever branch CI is on
    conf.update(dirs)
    path = tmp / "asv.conf.json"
    path.write_text(json.dumps(conf))
    if not (tmp / "imgload").exists():  # install_command runs `python -m imgload.envcheck` in the config's folder
        (tmp / "imgload").symlink_to(REPO / "imgload")
    return path


@pytest.fixture(scope="session")
def two_stack_run(tmp_path_factory, manifests):
    import json
    import subprocess

    tmp = tmp_path_factory.mktemp("asv-two-stacks")
    include = json.loads((REPO / "asv.conf.json").read_text())["include"]
    stacks = [include[0], include[-1]]
    config = asv_config(tmp, stacks)
    env = dict(os.environ, IMGLOAD_DATASET=str(manifests["small"]), IMGLOAD_LARGE_DATASET=str(manifests["large"]),
               IMGLOAD_DATA_DIR=str(tmp / "data"))
    asv = [sys.executable, "-m", "asv"]
    subprocess.run([*asv, "machine", "--yes", "--machine", "imgload-a", "--config", str(config)], env=env, check=True, capture_output=True)
    selection = [arg for regex in TWO_STACK_BENCHMARKS for arg in ("-b", regex)]
    out = subprocess.run([*asv, "run", "--quick", "--show-stderr", "--machine", "imgload-a", "--config", str(config), *selection, "HEAD^!"],
                         env=env, capture_output=True, text=True, timeout=1500)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return {"tmp": tmp, "config": config, "env": env, "stacks": stacks, "asv": asv}
