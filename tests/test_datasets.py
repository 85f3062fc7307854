import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgload import cifar, cli, datasets, materialize

from .helpers import snapshot

REPO = datasets.REPO


def test_layout_and_index(tiny):
    index = datasets.load_index(tiny)
    assert (tiny / datasets.MARKER).is_file()
    assert index["count"] == 120 and index["train"] == 100 and index["test"] == 20
    assert index["shape"] == [32, 32, 3] and len(index["labels"]) == 120
    assert list(index["formats"]) == ["png", "jpeg", "pickle-p2", "pickle-p5", "npy"]
    for fmt in index["formats"]:
        names = sorted(p.name for p in (tiny / fmt).iterdir())
        suffix = materialize.SUFFIX[fmt]
        assert names == [f"{i:05d}{suffix}" for i in range(120)]
        sizes = [(tiny / fmt / n).stat().st_size for n in names]
        assert index["formats"][fmt]["total_bytes"] == sum(sizes)
        assert (
            index["formats"][fmt]["sizes"] == sizes
        )  # what the cheap check before reuse compares
        assert index["formats"][fmt]["mean_bytes"] == pytest.approx(sum(sizes) / 120, abs=0.1)
    assert sorted(p.name for p in (tiny / "batches" / "pickle").iterdir()) == sorted(
        [*cifar.TRAIN_BATCHES, cifar.TEST_BATCH]
    )
    assert np.load(tiny / "batches" / "npy" / "data_batch_1.npy").shape == (20, 32, 32, 3)
    for name, info in index["batches"].items():
        assert info["bytes"] == {
            fmt: materialize.batch_path(tiny, fmt, name).stat().st_size
            for fmt in ("pickle", "npy")
        }


def test_every_format_holds_the_source_pixels(tiny, data_dir):
    train, test = cifar.read(data_dir / "sources" / "tiny-cifar" / cifar.FOLDER)
    source = np.concatenate([train.images, test.images])
    for i in (0, 57, 119):
        assert np.array_equal(np.asarray(Image.open(tiny / "png" / f"{i:05d}.png")), source[i])
        assert np.array_equal(np.load(tiny / "npy" / f"{i:05d}.npy"), source[i])
        for fmt in ("pickle-p2", "pickle-p5"):
            assert np.array_equal(
                np.load(tiny / fmt / f"{i:05d}.pkl", allow_pickle=True), source[i]
            )
        jpeg = np.asarray(Image.open(tiny / "jpeg" / f"{i:05d}.jpg"))
        # lossy (q90 with 4:2:0 on 32x32 measures ~28 dB), but clearly this picture, not another
        scores = [_psnr(jpeg, other) for other in source]
        assert scores[i] > 22 and scores[i] > sorted(scores)[-2] + 6
    assert np.array_equal(np.load(tiny / "batches" / "npy" / "test_batch.npy"), test.images)


def _psnr(a, b) -> float:
    mse = np.mean((a.astype(float) - b.astype(float)) ** 2)
    return 10 * np.log10(255**2 / mse)


def test_checksums_match_files(tiny):
    lines = (tiny / "SHA256SUMS").read_text().splitlines()
    assert len(lines) == 120 * len(datasets.load_index(tiny)["formats"])
    for line in lines[::37]:
        digest, name = line.split("  ")
        assert hashlib.sha256((tiny / name).read_bytes()).hexdigest() == digest


def test_pickle_p2_is_what_ndarray_dump_writes(tiny, tmp_path):
    a = np.load(tiny / "npy" / "00003.npy")
    a.dump(tmp_path / "dumped.pkl")
    assert (tmp_path / "dumped.pkl").read_bytes() == (
        tiny / "pickle-p2" / "00003.pkl"
    ).read_bytes()


def test_deterministic_across_data_dirs(manifests, tiny, tmp_path):
    other = datasets.prepare(manifests["small"], tmp_path)
    assert (other / "SHA256SUMS").read_bytes() == (tiny / "SHA256SUMS").read_bytes()


def test_second_prepare_reuses_the_set(manifests, tiny, data_dir):
    marker_before = (tiny / datasets.MARKER).stat().st_mtime_ns
    started = time.perf_counter()
    assert datasets.prepare(manifests["small"], data_dir) == tiny
    assert time.perf_counter() - started < 1.0
    assert (tiny / datasets.MARKER).stat().st_mtime_ns == marker_before


def test_incomplete_set_is_rebuilt(manifests, tmp_path):
    path = datasets.prepare(manifests["large"], tmp_path)
    (path / datasets.MARKER).unlink()
    (path / "png" / "00000.png").write_bytes(b"half-written")
    again = datasets.prepare(manifests["large"], tmp_path)
    assert (again / datasets.MARKER).is_file()
    assert np.asarray(Image.open(again / "png" / "00000.png")).shape == (75, 100, 3)


def test_changed_manifest_rebuilds(manifests, tmp_path):
    datasets.prepare(manifests["large"], tmp_path)
    changed = tmp_path / "tiny-large.toml"
    changed.write_text(manifests["large"].read_text().replace("seed = 8", "seed = 9"))
    rebuilt = datasets.prepare(changed, tmp_path)
    assert datasets.is_complete(rebuilt, datasets.manifest(changed))
    assert not datasets.is_complete(rebuilt, datasets.manifest(manifests["large"]))


def _prepare_cmd(manifest, data_dir):
    return [
        sys.executable,
        "-m",
        "imgload",
        "data",
        "prepare",
        str(manifest),
        "--data-dir",
        str(data_dir),
        "-q",
    ]


def test_prepare_killed_midway_leaves_no_usable_partial_and_recovers(manifests, tmp_path):
    proc = subprocess.Popen(_prepare_cmd(manifests["small"], tmp_path), cwd=REPO)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".tiny-cifar.partial-*/png/*")) and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "tiny-cifar").exists(), "an interrupted prepare must not expose the set"
    out = subprocess.run(
        _prepare_cmd(manifests["small"], tmp_path),
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == str(tmp_path / "tiny-cifar")
    assert not list(tmp_path.glob(".tiny-cifar.partial-*")), "stale partial folders are cleaned up"
    assert json.loads((tmp_path / "tiny-cifar" / "index.json").read_text())["count"] == 120


def test_concurrent_prepares_build_once_and_agree(manifests, tiny, tmp_path):
    procs = [
        subprocess.Popen(
            _prepare_cmd(manifests["small"], tmp_path), cwd=REPO, stdout=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0]
    assert outs == [str(tmp_path / "tiny-cifar")] * 3
    assert (tmp_path / "tiny-cifar" / "SHA256SUMS").read_bytes() == (
        tiny / "SHA256SUMS"
    ).read_bytes()
    assert not list(tmp_path.glob(".tiny-cifar.partial-*"))


def test_unwritable_data_dir_is_one_clear_line(manifests, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")  # a data dir below a regular file cannot be created, even by root
    out = subprocess.run(
        _prepare_cmd(manifests["small"], blocker / "data"),
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert (
        out.stderr.count("\n") == 1
        and str(blocker / "data") in out.stderr
        and "not writable" in out.stderr
    )


def test_unknown_dataset_names_the_known_ones(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "imgload",
            "data",
            "prepare",
            "no-such-set",
            "--data-dir",
            str(tmp_path),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert (
        out.returncode == 2 and "synthetic-cifar10" in out.stderr and out.stderr.count("\n") == 1
    )


def test_data_dir_defaults_to_env_then_repo(clean_env, monkeypatch, tmp_path):
    assert datasets.data_root() == REPO / ".data"
    monkeypatch.setenv("IMGLOAD_DATA_DIR", str(tmp_path))
    assert datasets.data_root() == tmp_path


@pytest.mark.parametrize("option", [None, "elsewhere/data"])
def test_relative_data_dir_is_the_repositorys_from_any_folder(
    clean_env, monkeypatch, tmp_path, option
):
    """asv runs setup_cache in a temporary folder: a relative IMGLOAD_DATA_DIR (or --data-dir)
    must still name the folder `make data` prepared, in the repository."""
    monkeypatch.setenv("IMGLOAD_DATA_DIR", "relative/data")
    expected = REPO / (option or "relative/data")
    for cwd in (REPO, tmp_path, REPO / "imgload"):
        monkeypatch.chdir(cwd)
        assert datasets.data_root(option) == expected
    assert (
        list(tmp_path.iterdir()) == []
        and not (REPO / "relative").exists()
        and not (REPO / "elsewhere").exists()
    )


def _own_and_others_leftovers(data):
    """What killed prepares of tiny-cifar and of other sets left, plus scratch names that are
    links to a folder outside: only tiny-cifar's own may go, a link without its target."""
    outside = data.parent / "outside"
    for rel in (
        ".tiny-cifar.partial-123/png/00000.png",
        ".tiny-cifar.partial-discard-9/x",
        "sources/.tiny-cifar.partial-99/x",
        ".tiny-cifar-2.partial-5/x",
        ".other.partial-7/x",
        "sources/.other.partial-8/x",
        "sources/other/x",
        "tiny-cifar.partial-1/x",
        ".tiny-cifar.partial-1x/x",
        "../outside/keep",
    ):
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        (data / rel).write_bytes(b"x")
    (data / ".tiny-cifar.partial-55").symlink_to(outside)
    (data / "sources" / ".tiny-cifar.partial-56").symlink_to(outside)
    return {
        ".tiny-cifar.partial-123",
        ".tiny-cifar.partial-discard-9",
        "sources/.tiny-cifar.partial-99",
        ".tiny-cifar.partial-55",
        "sources/.tiny-cifar.partial-56",
    }


def test_next_prepare_removes_only_its_own_leftovers(manifests, tmp_path):
    data = tmp_path / "data"
    own = _own_and_others_leftovers(data)
    before = snapshot(tmp_path)
    datasets.prepare(manifests["small"], data)
    after = snapshot(tmp_path)
    assert not [rel for rel in own if os.path.lexists(data / rel)]
    kept = {
        rel: was
        for rel, was in before.items()
        if not any(rel == f"data/{o}" or rel.startswith(f"data/{o}/") for o in own)
    }
    assert {rel: after.get(rel) for rel in kept} == kept, (
        "other sets' leftovers and the folder outside are untouched"
    )


def test_a_build_that_fails_leaves_no_partial_folder(manifests, tmp_path, monkeypatch):
    def half_written(root, train, test):
        root.mkdir(parents=True)
        (root / "data_batch_1").write_bytes(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cifar, "write", half_written)
    with pytest.raises(OSError, match="No space left"):
        datasets.prepare(manifests["small"], tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".locks", "sources"]
    assert list((tmp_path / "sources").iterdir()) == [], (
        "the half-written sources/.tiny-cifar.partial-* is gone"
    )


@pytest.fixture
def large_copy(tiny_large, tmp_path):
    """A private copy of the prepared tiny-large set, to damage."""
    shutil.copytree(tiny_large, tmp_path / "tiny-large")
    return tmp_path / "tiny-large"


@pytest.mark.parametrize("damage", ["truncate", "delete", "empty", "grow"])
@pytest.mark.parametrize("rel", ["png/00002.png", "jpeg/00003.jpg"])
def test_a_damaged_middle_file_forces_a_rebuild(manifests, large_copy, damage, rel):
    victim = large_copy / rel
    good = victim.read_bytes()
    if damage == "delete":
        victim.unlink()
    else:
        victim.write_bytes(
            {"truncate": good[: len(good) // 2], "empty": b"", "grow": good + b"\0"}[damage]
        )
    m = datasets.manifest(manifests["large"])
    assert not datasets.is_complete(large_copy, m)
    assert datasets.prepare(manifests["large"], large_copy.parent) == large_copy
    assert victim.read_bytes() == good and datasets.first_problem(large_copy) is None


def test_a_damaged_batch_file_forces_a_rebuild(manifests, tiny, tmp_path):
    shutil.copytree(tiny, tmp_path / "tiny-cifar")
    batch = materialize.batch_path(tmp_path / "tiny-cifar", "npy", "data_batch_3")
    good = batch.read_bytes()
    batch.write_bytes(good[:-100])
    assert not datasets.is_complete(tmp_path / "tiny-cifar", datasets.manifest(manifests["small"]))
    datasets.prepare(manifests["small"], tmp_path)
    assert batch.read_bytes() == good


def test_an_index_without_file_sizes_is_rebuilt(manifests, large_copy):
    index = json.loads((large_copy / "index.json").read_text())
    for summary in index["formats"].values():
        del summary["sizes"]  # as written before sizes were recorded
    (large_copy / "index.json").write_text(json.dumps(index))
    m = datasets.manifest(manifests["large"])
    assert not datasets.is_complete(large_copy, m)
    assert datasets.prepare(manifests["large"], large_copy.parent) == large_copy
    assert (
        datasets.is_complete(large_copy, m)
        and "sizes" in datasets.load_index(large_copy)["formats"]["png"]
    )


def _verify(capsys, manifest, data_dir) -> tuple[int, str]:
    code = cli.main(["data", "verify", str(manifest), "--data-dir", str(data_dir)])
    return code, capsys.readouterr().err


REBUILD = "; run: python -m imgload data prepare tiny-large (it rebuilds the set)"


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "{not json",
            "unreadable (Expecting property name enclosed in double quotes:"
            " line 1 column 2 (char 1))",
        ),
        ("[]", "malformed (TypeError: list indices must be integers or slices, not str)"),
        (
            '{"formats": {"png": {}}, "count": 6, "stem_width": 5}',
            "records no file sizes (written by an older imgload)",
        ),
        (
            '{"formats": {"../x": {"sizes": []}}, "count": 0}',
            "malformed (ValueError: unknown format '../x')",
        ),
        (
            '{"formats": {"png": {"sizes": [1]}}, "count": 6}',
            "malformed (ValueError: 1 png sizes for 6 images)",
        ),
    ],
)
def test_verify_names_a_corrupt_index_in_one_line(manifests, large_copy, capsys, text, message):
    (large_copy / "index.json").write_text(text)
    code, err = _verify(capsys, manifests["large"], large_copy.parent)
    assert (code, err) == (1, f"imgload: error: {large_copy / 'index.json'}: {message}{REBUILD}\n")
    assert not datasets.is_complete(large_copy, datasets.manifest(manifests["large"]))


def test_verify_names_a_missing_index(manifests, large_copy, capsys):
    (large_copy / "index.json").unlink()
    assert _verify(capsys, manifests["large"], large_copy.parent) == (
        1,
        f"imgload: error: {large_copy / 'index.json'}: missing{REBUILD}\n",
    )


@pytest.mark.parametrize(
    "line, why",
    [
        ("garbage", "is not '<sha256>  <file>'"),
        ("0" * 64 + " png/00002.png", "is not '<sha256>  <file>'"),
        ("0" * 64 + "  ../../outside.txt", "names no file of the set"),
        ("SAME", "names a file twice"),
    ],
)
def test_verify_names_a_malformed_checksum_line_in_one_line(
    manifests, large_copy, capsys, line, why
):
    sums = large_copy / "SHA256SUMS"
    lines = sums.read_text().splitlines()
    lines[2] = lines[1] if line == "SAME" else line
    sums.write_text("\n".join(lines) + "\n")
    code, err = _verify(capsys, manifests["large"], large_copy.parent)
    hint = (
        f"; to rebuild, delete {large_copy / datasets.MARKER} and run: python -m imgload data"
        " prepare tiny-large"
    )
    assert (code, err) == (1, f"imgload: error: {sums} line 3: {lines[2]!r} {why}{hint}\n")


def test_verify_names_a_stray_file(manifests, large_copy, capsys):
    (large_copy / "png" / "00002 (copy).png").write_bytes(
        (large_copy / "png" / "00002.png").read_bytes()
    )
    code, err = _verify(capsys, manifests["large"], large_copy.parent)
    assert (code, err) == (
        1,
        f"imgload: error: {large_copy / 'png' / '00002 (copy).png'}: stray file, not part of the"
        " prepared set (delete it)\n",
    )
    assert datasets.is_complete(large_copy, datasets.manifest(manifests["large"])), (
        "a stray file does not stop reuse"
    )


def test_changed_synthetic_source_regenerates_the_source_batches(manifests, tiny, tmp_path):
    """A manifest changed under the same name (another seed) must not be built from the
    source batches the old one left in sources/."""
    datasets.prepare(manifests["small"], tmp_path)
    changed = tmp_path / "tiny-cifar.toml"
    changed.write_text(manifests["small"].read_text().replace("seed = 7", "seed = 70"))
    path = datasets.prepare(changed, tmp_path)
    assert (path / "png" / "00000.png").read_bytes() != (tiny / "png" / "00000.png").read_bytes()
    train, _ = cifar.read(tmp_path / "sources" / "tiny-cifar" / cifar.FOLDER)
    assert np.array_equal(np.load(path / "npy" / "00000.npy"), train.images[0])


def test_sample_is_fixed_spread_and_excludes_the_priming_file(tiny, clean_env, monkeypatch):
    files = datasets.sample_files(tiny, "png")
    assert len(files) == 16 and files == sorted(files) == datasets.sample_files(tiny, "png")
    assert files[0].endswith("00000.png") and files[-1].endswith("00099.png")
    assert datasets.priming_file(tiny, "png") not in files
    monkeypatch.setenv("IMGLOAD_PROFILE", "full")
    assert len(datasets.sample_files(tiny, "png")) == 100
    monkeypatch.setenv("IMGLOAD_PROFILE", "smoke")
    monkeypatch.setattr(datasets, "SMOKE_FILES", 5)
    smoke = datasets.sample_files(tiny, "png")
    assert len(smoke) == 5 and set(smoke) <= set(datasets.sample_files(tiny, "png", "full"))
    monkeypatch.setenv("IMGLOAD_PROFILE", "fast")
    with pytest.raises(datasets.DatasetError, match="IMGLOAD_PROFILE"):
        datasets.sample_files(tiny, "png")


def test_shipped_manifests_load():
    for name in ("synthetic-cifar10", "synthetic-large"):
        m = datasets.manifest(name)
        assert m.name == name and m.source["kind"] == "synthetic" and m.sample > 0
    assert datasets.manifest("synthetic-cifar10").layout == "cifar-python"


def test_prepare_refuses_a_wrong_profile_before_preparing_anything(manifests, tmp_path):
    env = dict(os.environ, IMGLOAD_PROFILE="bogus")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "imgload",
            "data",
            "prepare",
            str(manifests["large"]),
            "--data-dir",
            str(tmp_path / "d"),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    assert (
        out.returncode == 2
        and out.stderr
        == "imgload: error: IMGLOAD_PROFILE='bogus': expected one of default, full, smoke\n"
    )
    assert not (tmp_path / "d").exists()


def test_prepare_refuses_a_data_dir_on_tmpfs(manifests):
    shm = Path("/dev/shm")
    if not shm.is_dir() or not os.access(shm, os.W_OK):
        pytest.skip("no writable /dev/shm (tmpfs) on this machine")
    target = Path(tempfile.mkdtemp(prefix="imgload-tmpfs-", dir=shm))
    try:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "imgload",
                "data",
                "prepare",
                str(manifests["large"]),
                "-q",
                "--data-dir",
                str(target),
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
        assert (
            "cannot be evicted from the page cache" in out.stderr
            and "IMGLOAD_DATA_DIR" in out.stderr
        )
    finally:
        shutil.rmtree(target)
