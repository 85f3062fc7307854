"""asv itself, on the real suite: discovery, and a real run in a real virtualenv."""

import itertools
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import REPO, asv_config, codecs_na_by_design, dataset_env, formats_na_by_design

pytestmark = pytest.mark.asv
ASV = [sys.executable, "-m", "asv"]
NOT_APPLICABLE = [
    {"decoder": "simplejpeg", "format": "png"},
    {"loader": "pickle", "format": "npy"},
]


def test_asv_check_discovers_every_benchmark():
    out = subprocess.run(
        [*ASV, "check", "-E", f"existing:{sys.executable}"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "No problems found" in out.stdout


@pytest.fixture(scope="module")
def asv_run(tmp_path_factory, manifests):
    """`asv run --quick` of the whole suite in the newest stack, on the tiny datasets."""
    tmp = tmp_path_factory.mktemp("asv")
    stack = json.loads((REPO / "asv.conf.json").read_text())["include"][-1]
    conf_path = asv_config(tmp, [stack])
    env = dataset_env(manifests, tmp / "data")
    config = ["--config", str(conf_path)]
    subprocess.run(
        [*ASV, "machine", "--yes", "--machine", "imgload-test", *config],
        env=env,
        check=True,
        capture_output=True,
    )
    out = subprocess.run(
        [*ASV, "run", "--quick", "--show-stderr", "--machine", "imgload-test", *config, "HEAD^!"],
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    return tmp, stack, out


def _results(tmp: Path):
    files = [
        p for p in (tmp / "results" / "imgload-test").glob("*.json") if p.name != "machine.json"
    ]
    assert len(files) == 1, files
    data = json.loads(files[0].read_text())
    columns = data["result_columns"]
    return {name: dict(zip(columns, row)) for name, row in data["results"].items()}


def test_run_writes_a_result_for_every_benchmark_and_combination(asv_run):
    tmp, stack, out = asv_run
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    benchmarks = json.loads((tmp / "results" / "benchmarks.json").read_text())
    results = _results(tmp)
    names = {n for n in benchmarks if n != "version"}
    assert names == set(results)
    assert {
        "bench_decode.SmallImages.time_decode",
        "bench_decode.LargeImages.time_decode",
        "bench_pickle.ArrayFiles.time_load",
        "bench_pickle.CifarBatch.time_load",
        "bench_pickle.CifarBatch.peakmem_load",
        "bench_pickle.CifarBatch.peakmem_reference",
    } <= names
    for name, row in results.items():
        param_names = benchmarks[name]["param_names"]
        combos = [dict(zip(param_names, c)) for c in itertools.product(*row["params"])]
        assert len(combos) == len(row["result"])
        for combo, value in zip(combos, row["result"]):
            combo = {k: v.strip("'") for k, v in combo.items()}
            expected_na = any(
                all(combo.get(k) == v for k, v in rule.items()) for rule in NOT_APPLICABLE
            )
            if name.startswith(
                "bench_codecs."
            ):  # every decoder x format x source: n/a where it cannot
                expected_na = codecs_na_by_design(
                    combo["decoder"], combo["format"], combo["source"]
                )
            if name.startswith("bench_formats."):
                expected_na = formats_na_by_design(combo["decoder"], combo["format"])
            expected_na |= name.startswith("bench_dataloader.")  # no torch: asv.torch.conf.json
            assert value is not None, f"{name} {combo} failed"
            assert math.isnan(value) == expected_na, f"{name} {combo}: {value}"
            assert expected_na or value > 0


def test_each_dataset_is_prepared_once_per_environment(asv_run):
    """The classes inherit benchmarks/common's setup_caches, which asv keys by where they are
    defined: one for each set (small, large, and bench_formats' three), and bench_sample's for
    all, whatever the number of classes."""
    tmp, stack, out = asv_run
    files = [
        p for p in (tmp / "results" / "imgload-test").glob("*.json") if p.name != "machine.json"
    ]
    durations = json.loads(files[0].read_text())["durations"]
    assert sorted(k.split(":")[0] for k in durations if k.startswith("<setup_cache")) == [
        "<setup_cache bench_sample",
        *["<setup_cache common"] * 5,
    ], durations


def test_run_verified_the_environment_pins(asv_run):
    tmp, stack, out = asv_run
    records = list((tmp / "envinfo").glob("*.json"))
    assert len(records) == 1
    record = json.loads(records[0].read_text())
    assert record["stack"] == stack["env"]["IMGLOAD_STACK"]
    assert record["pins"] == stack["req"] == record["installed"]
