"""What the tests share, in one module (conftest.py holds the fixtures only):

REPO, TINY_CIFAR, TINY_LARGE        the checkout, and the tiny dataset manifests
asv_config                          an asv config for the real suite in a temporary folder
http_server, serve, serve_folder, gated   a server on 127.0.0.1 (network tests talk to nothing
                                          else)
cifar_tree, tar_gz, remote_manifest a tiny CIFAR-10 archive and a manifest that fetches it
Lines, reaped, git, snapshot        a stream read as it comes, processes stopped, git, a folder's
                                    contents
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import json
import os
import pickle
import subprocess
import tarfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# ------------------------------------------------------------------ datasets

TINY_CIFAR = """
name = "tiny-cifar"
description = "5 x 20 training + 20 test images, CIFAR layout"
licence = "CC0-1.0"
layout = "cifar-python"
formats = ["png", "jpeg", "pickle-p2", "pickle-p5", "npy"]
containers = ["wds", "zip", "lmdb", "hdf5", "hdf5-decoded", "parquet", "memmap"]
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
containers = ["wds", "zip", "lmdb", "hdf5", "hdf5-decoded", "parquet", "memmap"]
[source]
kind = "synthetic"
seed = 8
shape = [75, 100]
train = 5
test = 1
[sample]
default = 4
"""

# bench_formats' sets, tiny: every format and JPEG variant, and the two sizes' formats
TINY_FORMATS = """
name = "tiny-formats"
description = "4 images of 60x80 in every format bench_formats reads at one size"
licence = "CC0-1.0"
layout = "arrays"
formats = ["jpeg", "jpeg-q75", "jpeg-q95", "jpeg-444", "jpeg-progressive", "webp", "avif", "jxl",
           "heic"]
[source]
kind = "synthetic"
seed = 9
shape = [60, 80]
train = 3
test = 1
[sample]
default = 3
"""
TINY_MEDIUM = """
name = "tiny-medium"
description = "3 images of 96x128"
licence = "CC0-1.0"
layout = "arrays"
formats = ["png", "jpeg"]
[source]
kind = "synthetic"
seed = 10
shape = [96, 128]
train = 2
test = 1
[sample]
default = 2
"""
TINY_CAMERA = """
name = "tiny-camera"
description = "3 images of 120x160"
licence = "CC0-1.0"
layout = "arrays"
formats = ["jpeg"]
[source]
kind = "synthetic"
seed = 11
shape = [120, 160]
train = 2
test = 1
[sample]
default = 2
"""
# the manifests fixture's file for each of suite.ROLES
TINY_MANIFESTS = {
    "small": ("tiny-cifar.toml", TINY_CIFAR),
    "large": ("tiny-large.toml", TINY_LARGE),
    "formats": ("tiny-formats.toml", TINY_FORMATS),
    "medium": ("tiny-medium.toml", TINY_MEDIUM),
    "camera": ("tiny-camera.toml", TINY_CAMERA),
}


def dataset_env(manifests: dict, data_dir: Path) -> dict:
    """The environment that points every role's dataset (suite.ROLES) at its tiny manifest and
    the data dir at `data_dir`: os.environ with those, and without IMGLOAD_PROFILE."""
    from imgload import suite

    env = dict(os.environ, IMGLOAD_DATA_DIR=str(data_dir))
    env.update({suite.ROLES[role][0]: str(path) for role, path in manifests.items()})
    env.pop("IMGLOAD_PROFILE", None)
    return env


N_TRAIN, N_TEST = 25, 5  # the images of cifar_tree's archive


def cifar_tree(root: Path, payload=None):
    """A tiny CIFAR-10 folder (N_TRAIN training images in 5 batches, N_TEST test) under root, in
    the official layout; `payload` replaces data_batch_1's pickle. Returns (images, labels)."""
    from imgload import cifar, synthetic

    imgs = synthetic.images(21, N_TRAIN + N_TEST, (32, 32))
    labels = synthetic.labels(21, N_TRAIN + N_TEST)
    names = [f"img_{i}.png" for i in range(N_TRAIN + N_TEST)]
    cifar.write(
        root / cifar.FOLDER,
        cifar.Split(imgs[:N_TRAIN], labels[:N_TRAIN], names[:N_TRAIN]),
        cifar.Split(imgs[N_TRAIN:], labels[N_TRAIN:], names[N_TRAIN:]),
    )
    if payload is not None:
        (root / cifar.FOLDER / "data_batch_1").write_bytes(pickle.dumps(payload, protocol=2))
    return imgs, labels


def tar_gz(src_root: Path, archive: Path) -> str:
    """cifar_tree's folder as a .tar.gz; returns its md5."""
    from imgload import cifar

    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src_root / cifar.FOLDER, arcname=cifar.FOLDER)
    return hashlib.md5(archive.read_bytes()).hexdigest()


def remote_manifest(tmp_path: Path, url: str, md5: str, name: str = "remote-cifar") -> Path:
    """datasets/cifar10.toml fetching from `url` with hash `md5`, as <tmp_path>/<name>.toml."""
    text = (REPO / "datasets" / "cifar10.toml").read_text()
    text = text.replace('name = "cifar10"', f'name = "{name}"')
    text = text.replace("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", url)
    text = text.replace("c58f30108f718f92721af3b95e74349a", md5).replace(
        "default = 1000", "default = 8"
    )
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


# ------------------------------------------------------------------ asv

# A real asv run of a few benchmarks in two library stacks on the tiny datasets (the
# two_stack_run fixture), shared by the report and site tests. The oldest stack lacks
# simplejpeg, so some results are n/a.
TWO_STACK_BENCHMARKS = [
    r"SmallImages.time_decode\('(cv2|simplejpeg)', 'jpeg', '(sequential|threads-2)'",
    r"Overhead.(time_bare_loop|time_sequential|track_sequential_over_bare)\('cv2', 'jpeg'",
    r"^bench_sample",
]


def asv_config(tmp: Path, stacks: list[dict], **dirs) -> Path:
    """An asv config for the real suite with only `stacks`, writing under `tmp`."""
    conf = json.loads((REPO / "asv.conf.json").read_text())
    conf.update(
        repo=str(REPO),
        benchmark_dir=str(REPO / "benchmarks"),
        env_dir="env",
        results_dir="results",
        html_dir="html",
        include=stacks,
        branches=["HEAD"],
    )  # publish graphs the checked-out commit, whatever branch CI is on
    conf.update(dirs)
    path = tmp / "asv.conf.json"
    path.write_text(json.dumps(conf))
    if not (
        tmp / "imgload"
    ).exists():  # install_command runs `python -m imgload.envcheck` in the config's folder
        (tmp / "imgload").symlink_to(REPO / "imgload")
    return path


# ------------------------------------------------------------------ a server on 127.0.0.1


class QuietHandler(http.server.BaseHTTPRequestHandler):
    """A handler that keeps the test output clean (no line per request)."""

    def log_message(self, *args):
        pass


class Handler(QuietHandler):
    """serve()'s handler: the server's body at any path; can fail the first requests
    (server.fail_first) or cut the body short (server.truncate)."""

    def do_GET(self):
        server = self.server
        server.requests += 1
        body = server.body
        if server.fail_first > 0:
            server.fail_first -= 1
            self.send_error(500, "try again")
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if server.truncate else body)


@contextlib.contextmanager
def http_server(handler):
    """A ThreadingHTTPServer on 127.0.0.1 (a free port) answering with `handler` from a thread
    of this process; .base is its address (no trailing slash). Stopped and closed on exit."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


@contextlib.contextmanager
def serve(body: bytes, name: str, handler=Handler):
    """A running server whose .url ends in /name; .requests counts the GETs."""
    with http_server(handler) as httpd:
        httpd.body, httpd.requests, httpd.fail_first, httpd.truncate = body, 0, 0, False
        httpd.url = f"{httpd.base}/{name}"
        yield httpd


class _QuietFiles(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serve_folder(folder: Path):
    """A running server of the files in `folder`, as a static web site."""
    with http_server(functools.partial(_QuietFiles, directory=str(folder))) as httpd:
        yield httpd


class _GatedHandler(Handler):
    """Half the body, then a byte every 0.2 s (the connection stays alive: no read times out)
    until server.gate is set, then the rest: a download that lasts as long as a test needs."""

    def do_GET(self):
        server = self.server
        server.requests += 1
        body = server.body
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        sent = len(body) // 2
        self.wfile.write(body[:sent])
        self.wfile.flush()
        while not server.gate.wait(0.2) and sent < len(body) - 1:
            self.wfile.write(body[sent : sent + 1])
            self.wfile.flush()
            sent += 1
        self.wfile.write(body[sent:])


@contextlib.contextmanager
def gated(body: bytes, name: str):
    """serve() with _GatedHandler; the gate opens at the latest when the block ends."""
    with serve(body, name, _GatedHandler) as httpd:
        httpd.gate = threading.Event()
        try:
            yield httpd
        finally:
            httpd.gate.set()


# ------------------------------------------------------------------ processes, git, folders


class Lines:
    """The lines a stream yields, read as they come by a thread of their own."""

    def __init__(self, stream):
        self.lines = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream):
        for line in stream:
            self.lines.append(line)

    def has(self, text: str) -> bool:
        return any(text in line for line in list(self.lines))

    def wait_for(self, text: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.has(text):
                return True
            time.sleep(0.05)
        return False

    def text(self) -> str:
        self._thread.join(10)
        return "".join(self.lines)


@contextlib.contextmanager
def reaped(procs: list[subprocess.Popen]):
    """Yields `procs`, a list the block may append to; on leaving, however it leaves, every one
    still running is killed and waited for (a failed assertion leaves no process behind)."""
    try:
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def git(repo: Path, *args: str) -> str:
    """`git -C repo args...`'s output, stripped; a failure raises."""
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def snapshot(root) -> dict:
    """Every path under root (links not followed) -> its bytes, link target or 'dir'."""
    out = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, root)
            if os.path.islink(path):
                out[rel] = ("link", os.readlink(path))
            elif os.path.isdir(path):
                out[rel] = "dir"
            else:
                with open(path, "rb") as f:
                    out[rel] = f.read()
    return out


def codecs_na_by_design(decoder: str, fmt: str, source: str) -> bool:
    """n/a by design: a format the decoder does not read, skimage from memory, PyTurboJPEG where
    this machine has no usable libturbojpeg, or torchvision and TensorFlow outside the opt-in ML
    stack."""
    from imgload import decoders

    try:
        decoders.get(decoder, fmt, source)
    except decoders.Unavailable as e:
        reasons = ("does not read", "not bytes", "libturbojpeg", "opt-in ML decoders stack")
        return any(reason in str(e) for reason in reasons)
    return False


# what the newest stack's wheels (and .venv's, which pin the same) cannot read, measured:
# OpenCV has no JPEG XL, libvips (pyvips-binary) neither JPEG XL nor HEVC, imagecodecs no libheif
UNREADABLE_HERE = {("cv2", "jxl"), ("pyvips", "jxl"), ("pyvips", "heic"), ("imagecodecs", "heic")}


def formats_na_by_design(decoder: str, fmt: str) -> bool:
    """n/a by design in bench_formats (from a file): as codecs_na_by_design, or a format this
    build of the decoder's library cannot read (UNREADABLE_HERE)."""
    return codecs_na_by_design(decoder, fmt, "file") or (decoder, fmt) in UNREADABLE_HERE


def alive(pid: int) -> bool:
    """Process `pid` exists and is not a zombie (its /proc stat state is not Z)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def asv_quick_in_venv(tmp: Path, manifests: dict, machine: str, bench: str, **env) -> dict:
    """One real `asv run --quick` of the benchmarks matching `bench`, in the Python running the
    tests (`-E existing`: no environment to build), on the tiny datasets, results under `tmp`.
    Returns the run's results by benchmark name (asv's result columns as a dict); a failed
    run fails the test with asv's output. `env` adds or overrides variables (IMGLOAD_PROFILE
    is unset unless given)."""
    import sys

    local_asv_config(tmp)
    variables = dataset_env(manifests, tmp / "data")
    variables.update(env)
    asv = [sys.executable, "-m", "asv"]
    config = ["--config", str(tmp / "asv.conf.json")]
    subprocess.run(
        [*asv, "machine", "--yes", "--machine", machine, *config],
        env=variables,
        check=True,
        capture_output=True,
    )
    head = git(REPO, "rev-parse", "HEAD")
    # --set-commit-hash: asv saves no results of an existing environment without one
    out = subprocess.run(
        [
            *asv,
            "run",
            "--quick",
            "--show-stderr",
            "--machine",
            machine,
            *config,
            "-E",
            f"existing:{sys.executable}",
            "--set-commit-hash",
            head,
            "-b",
            bench,
        ],
        env=variables,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    [results] = [p for p in (tmp / "results" / machine).glob("*.json") if p.name != "machine.json"]
    data = json.loads(results.read_text())
    return {name: dict(zip(data["result_columns"], row)) for name, row in data["results"].items()}


def md_tables(text: str) -> list[list[list[str]]]:
    """Every table of a report.md (separator rows left out), cells as a reader sees them: what
    the report's tests and the site's comparison-page test both compare against."""
    import re

    tables, previous = [], ""
    for line in text.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            if not previous.startswith("|"):
                tables.append([])
            cells = [c.strip() for c in line.strip("|").split("|")]
            tables[-1].append([re.sub(r"\*\*|`|\\(?=\*)", "", c) for c in cells])
        previous = line
    return tables


def write_stack_results(
    machine_dir: Path,
    machine: dict,
    stack: str,
    columns: list[str],
    results: dict,
    requirements: dict | None = None,
    name: str | None = None,
) -> Path:
    """One stack's asv results file in `machine_dir`, as asv writes it (commit aaaaaaaa, env
    env-<stack>, IMGLOAD_STACK=<stack>; NaN written as NaN): `results` maps benchmark name ->
    its row of `columns`. Returns the file's path."""
    data = {
        "commit_hash": "a" * 40,
        "env_name": f"env-{stack}",
        "date": 1795490726000,
        "params": dict(machine, python="3.11"),
        "python": "3.11",
        "requirements": requirements or {},
        "env_vars": {"IMGLOAD_STACK": stack},
        "result_columns": columns,
        "results": results,
        "durations": {},
        "version": 2,
    }
    path = machine_dir / (name or f"aaaaaaaa-env-{stack}.json")
    path.write_text(json.dumps(data))
    return path


def one_stack_results(tmp: Path, stack: str, rows: dict) -> Path:
    """A results folder as asv leaves it (benchmarks.json, machine `box`, one stack's results
    file) for the report's tests: `rows` maps benchmark name -> (param names, params as asv
    writes them, one value per combination); bench_sample's records are tracks, the rest
    timings. Returns the folder."""
    folder = tmp / "results"
    (folder / "box").mkdir(parents=True)
    benchmarks = {"version": 2}
    for key, (names, params, _) in rows.items():
        kind = "track" if key.startswith("bench_sample.") else "time"
        unit = "seconds" if kind == "time" else "unit"
        benchmarks[key] = dict(
            name=key, type=kind, unit=unit, version="1", params=params, param_names=names
        )
    (folder / "benchmarks.json").write_text(json.dumps(benchmarks))
    machine = {"machine": "box", "cpu": "CPU", "num_cpu": "2", "os": "Linux", "version": 1}
    (folder / "box" / "machine.json").write_text(json.dumps(machine))
    write_stack_results(
        folder / "box",
        machine,
        stack,
        ["result", "params", "version"],
        {key: [values, params, "1"] for key, (_, params, values) in rows.items()},
    )
    return folder


def local_asv_config(tmp: Path, source: str = "asv.conf.json", **extra) -> Path:
    """A copy of the repository's asv config `source` whose environments, results and site go
    to `tmp`, written under the same name (the name install_command hands envcheck)."""
    conf = json.loads((REPO / source).read_text())
    conf.update(
        repo=str(REPO),
        benchmark_dir=str(REPO / "benchmarks"),
        results_dir=str(tmp / "results"),
        html_dir=str(tmp / "html"),
        env_dir=str(tmp / "env"),
        **extra,
    )
    path = tmp / source
    path.write_text(json.dumps(conf))
    return path


def sequential_arrays(loader: str, fmt: str, files: list[str]) -> list:
    """Every file decoded in order by the `sequential` execution: what every other execution
    must return."""
    from imgload import execution

    with execution.Runner("sequential", loader, fmt) as seq:
        return seq.run(files)


def arrays_equal(got, expected) -> bool:
    """The same arrays, in the same order, shape and pixels."""
    import numpy as np

    return len(got) == len(expected) and all(
        a.shape == b.shape and np.array_equal(a, b) for a, b in zip(got, expected)
    )
