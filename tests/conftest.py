"""The fixtures the tests share; everything else they share is in helpers.py."""

import os
import sys
from pathlib import Path

import pytest

from .helpers import REPO, TINY_MANIFESTS, TWO_STACK_BENCHMARKS, asv_config, dataset_env

sys.path.insert(0, str(REPO))

from imgload import datasets  # noqa: E402


@pytest.fixture(scope="session")
def manifests(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("manifests")
    for name, text in TINY_MANIFESTS.values():
        (d / name).write_text(text)
    return {role: d / name for role, (name, _) in TINY_MANIFESTS.items()}


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
    from imgload import suite

    for var in ("IMGLOAD_DATA_DIR", "IMGLOAD_PROFILE", *(v for v, _ in suite.ROLES.values())):
        monkeypatch.delenv(var, raising=False)
    return os.environ


@pytest.fixture(scope="session")
def two_stack_run(tmp_path_factory, manifests):
    import json
    import subprocess

    tmp = tmp_path_factory.mktemp("asv-two-stacks")
    include = json.loads((REPO / "asv.conf.json").read_text())["include"]
    stacks = [include[0], include[-1]]
    config = asv_config(tmp, stacks)
    env = dataset_env(manifests, tmp / "data")
    asv = [sys.executable, "-m", "asv"]
    subprocess.run(
        [*asv, "machine", "--yes", "--machine", "imgload-a", "--config", str(config)],
        env=env,
        check=True,
        capture_output=True,
    )
    selection = [arg for regex in TWO_STACK_BENCHMARKS for arg in ("-b", regex)]
    out = subprocess.run(
        [
            *asv,
            "run",
            "--quick",
            "--show-stderr",
            "--machine",
            "imgload-a",
            "--config",
            str(config),
            *selection,
            "HEAD^!",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return {"tmp": tmp, "config": config, "env": env, "stacks": stacks, "asv": asv}
