import json
import subprocess
import sys
from importlib import metadata

import pytest
from packaging.version import Version

from imgload import envcheck

from .conftest import REPO

CONF = json.loads((REPO / "asv.conf.json").read_text())


def test_config_defines_explicit_stacks_only():
    from asv.config import Config
    from asv.environment import get_environments

    envs = list(get_environments(Config.load(str(REPO / "asv.conf.json")), None, verbose=False))
    stacks = [e.env_vars["IMGLOAD_STACK"] for e in envs]
    assert len(envs) == len(CONF["include"]) >= 3 and len(set(stacks)) == len(stacks)
    for env, entry in zip(envs, CONF["include"]):
        assert env._requirements == entry["req"] and env.python == "3.11"


@pytest.mark.parametrize("entry", CONF["include"], ids=lambda e: e["env"]["IMGLOAD_STACK"])
def test_stack_pins_are_exact_and_installable_together(entry):
    pins = envcheck.stack_pins(CONF, entry["env"]["IMGLOAD_STACK"])
    for lib in ("numpy", "pillow", "opencv-python-headless", "imageio", "asv_runner"):
        assert lib in pins
    if Version(pins["opencv-python-headless"]) < Version("4.10"):
        assert Version(pins["numpy"]) < Version("2"), "OpenCV < 4.10 wheels are built against NumPy 1.x"


def test_stacks_span_releases_of_each_library():
    for lib in ("numpy", "pillow", "opencv-python-headless", "imageio"):
        versions = sorted({Version(e["req"][lib]) for e in CONF["include"]})
        assert len(versions) == len(CONF["include"]), lib


def test_mismatch_names_package_wanted_and_installed():
    numpy_version = metadata.version("numpy")
    assert envcheck.mismatches({"numpy": numpy_version}) == []
    assert envcheck.mismatches({"numpy": "1.0.0", "no-such-package-xyz": "1.0"}) == [
        "no-such-package-xyz: wanted 1.0, installed nothing",
        f"numpy: wanted 1.0.0, installed {numpy_version}",
    ]


def test_loose_pins_and_unknown_stacks_are_refused():
    conf = {"include": [{"env": {"IMGLOAD_STACK": "s"}, "req": {"numpy": ">=1.26"}}]}
    with pytest.raises(envcheck.EnvCheckError, match="exact versions"):
        envcheck.stack_pins(conf, "s")
    with pytest.raises(envcheck.EnvCheckError, match="no stack 'other'"):
        envcheck.stack_pins(conf, "other")


def _run_check(tmp_path, req, stack="test-stack"):
    conf = {"results_dir": "out/results", "include": [{"python": "3.11", "env": {"IMGLOAD_STACK": "test-stack"}, "req": req}]}
    (tmp_path / "asv.conf.json").write_text(json.dumps(conf))
    env = {"IMGLOAD_STACK": stack, "ASV_ENV_NAME": "virtualenv-test", "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "imgload.envcheck", str(tmp_path / "asv.conf.json")],
                          cwd=REPO, env=env, capture_output=True, text=True)


def test_check_stops_a_mismatched_environment_with_one_line(tmp_path):
    out = _run_check(tmp_path, {"numpy": "1.0.0"})
    assert out.returncode == 1
    assert out.stderr.strip().count("\n") == 0
    assert "virtualenv-test" in out.stderr and f"numpy: wanted 1.0.0, installed {metadata.version('numpy')}" in out.stderr
    assert not (tmp_path / "out" / "envinfo").exists()


def test_check_records_a_verified_environment(tmp_path):
    pins = {"numpy": metadata.version("numpy"), "pillow": metadata.version("pillow")}
    out = _run_check(tmp_path, pins)
    assert out.returncode == 0, out.stderr
    record = json.loads((tmp_path / "out" / "envinfo" / "virtualenv-test.json").read_text())
    assert record["pins"] == pins == record["installed"] and record["stack"] == "test-stack"
