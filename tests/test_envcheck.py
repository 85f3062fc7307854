import json
import subprocess
import sys
from importlib import metadata

import pytest
from asv import results as asv_results
from packaging.version import Version

from imgload import envcheck

from .helpers import REPO

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
        assert Version(pins["numpy"]) < Version("2"), (
            "OpenCV < 4.10 wheels are built against NumPy 1.x"
        )


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


def _run_check(tmp_path, req, stack="test-stack", env_name="virtualenv-test"):
    conf = {
        "results_dir": "out/results",
        "include": [{"python": "3.11", "env": {"IMGLOAD_STACK": "test-stack"}, "req": req}],
    }
    (tmp_path / "asv.conf.json").write_text(json.dumps(conf))
    env = {"IMGLOAD_STACK": stack, "ASV_ENV_NAME": env_name, "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "imgload.envcheck", str(tmp_path / "asv.conf.json")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )


def test_check_stops_a_mismatched_environment_with_one_line(tmp_path):
    out = _run_check(tmp_path, {"numpy": "1.0.0"})
    assert out.returncode == 1
    assert out.stderr.strip().count("\n") == 0
    assert (
        "virtualenv-test" in out.stderr
        and f"numpy: wanted 1.0.0, installed {metadata.version('numpy')}" in out.stderr
    )
    assert not (tmp_path / "out" / "envinfo").exists()


def test_check_records_a_verified_environment(tmp_path):
    pins = {"numpy": metadata.version("numpy"), "pillow": metadata.version("pillow")}
    out = _run_check(tmp_path, pins)
    assert out.returncode == 0, out.stderr
    record = json.loads((tmp_path / "out" / "envinfo" / "virtualenv-test.json").read_text())
    assert record["pins"] == pins == record["installed"] and record["stack"] == "test-stack"


def test_a_stack_name_too_long_for_a_file_name_is_recorded_under_asvs_hashed_name(tmp_path):
    """asv names an environment after every pin: the 2026-11 stack's name has 278 characters,
    more than a file name may have. The record takes asv's own short name, and the report
    finds it there."""
    from imgload import results

    pins = {"numpy": metadata.version("numpy")}
    long_name = "virtualenv-py3.11-" + "-".join(f"package{i}1.2.3" for i in range(20))
    assert len(long_name) > 255
    out = _run_check(tmp_path, pins, env_name=long_name)
    assert out.returncode == 0, out.stderr
    (path,) = (tmp_path / "out" / "envinfo").glob("*.json")
    assert path.name == asv_results.get_filename("m", "0" * 8, long_name).split("-", 1)[1]
    assert results.build_record(tmp_path / "out" / "envinfo", "m", long_name)["pins"] == pins


def _requires(name: str) -> set[str]:
    """What installing `name` pulls in: its requirements without extras, for this Python."""
    from packaging.requirements import Requirement

    found = set()
    for text in metadata.requires(name) or []:
        req = Requirement(text)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            found.add(envcheck.canonical(req.name))
    return found


def _host_pins() -> dict[str, str]:
    return {
        envcheck.canonical(k): v
        for k, v in envcheck.requirement_pins(REPO / "constraints.txt").items()
    }


def test_the_fetch_dependencies_are_all_pooch_imports_and_dotvenv_pins_them():
    closure, todo = set(), [envcheck.FETCHER]
    while todo:
        name = todo.pop()
        if name not in closure:
            closure.add(name)
            todo.extend(_requires(name))
    assert closure - {envcheck.FETCHER} == set(envcheck.FETCH_DEPENDENCIES)
    assert set(envcheck.FETCH_DEPENDENCIES) <= set(_host_pins())


def test_every_stack_pins_the_pooch_of_dotvenv():
    """asv's setup_cache fetches with the same code as `make data`, in every stack."""
    assert envcheck.fetch_pin(CONF) == _host_pins()["pooch"] == metadata.version("pooch")


def test_the_stacks_must_pin_one_pooch():
    stack = lambda name, req: {"env": {"IMGLOAD_STACK": name}, "req": req}  # noqa: E731
    with pytest.raises(
        envcheck.EnvCheckError,
        match="stack b does not pin pooch, which fetching a dataset in setup_cache needs",
    ):
        envcheck.fetch_pin(
            {"include": [stack("a", {"pooch": "1.9.0"}), stack("b", {"numpy": "2.4.6"})]}
        )
    with pytest.raises(
        envcheck.EnvCheckError,
        match=r"the stacks must pin one version of pooch, the fetch of every stack"
        r" \(a: 1.9.0, b: 1.8.2\)",
    ):
        envcheck.fetch_pin(
            {"include": [stack("a", {"pooch": "1.9.0"}), stack("b", {"pooch": "1.8.2"})]}
        )


def test_fetch_requirements_name_what_the_constraints_lack(tmp_path):
    (tmp_path / "constraints.txt").write_text("pooch==1.9.0\nrequests==2.34.2\n")
    with pytest.raises(
        envcheck.EnvCheckError,
        match="constraints.txt does not pin certifi, charset-normalizer, idna, urllib3,"
        " platformdirs, packaging, which pooch imports",
    ):
        envcheck.fetch_requirements(CONF, tmp_path / "constraints.txt")


@pytest.mark.parametrize("entry", CONF["include"], ids=lambda e: e["env"]["IMGLOAD_STACK"])
def test_every_stack_pin_reaches_pip_as_written(entry):
    """asv turns `"name": "version"` into `pip install name==...` with a pattern of its own, which
    drops a post-release's `.postN` (certifi 2026.10.19.post1 became 2026.10.19,
    which does not exist)."""
    from asv.util import ParsedPipDeclaration

    for name, version in entry["req"].items():
        assert ParsedPipDeclaration(f"{name} {version}").specification == f"=={version}", name
