import hashlib
import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from imgload import cifar, datasets, materialize

REPO = datasets.REPO


def test_layout_and_index(tiny):
    index = datasets.load_index(tiny)
    assert (tiny / datasets.MARKER).is_file()
    assert index["count"] == 120 and index["train"] == 100 and index["test"] == 20
    assert index["shape"] == [32, 32, 3] and len(index["labels"]) == 120
    for fmt in materialize.FORMATS:
        names = sorted(p.name for p in (tiny / fmt).iterdir())
        suffix = materialize.SUFFIX[fmt]
        assert names == [f"{i:05d}{suffix}" for i in range(120)]
        sizes = [(tiny / fmt / n).stat().st_size for n in names]
        assert index["formats"][fmt]["total_bytes"] == sum(sizes)
        assert index["formats"][fmt]["mean_bytes"] == pytest.approx(sum(sizes) / 120, abs=0.1)
    assert sorted(p.name for p in (tiny / "batches" / "pickle").iterdir()) == sorted([*cifar.TRAIN_BATCHES, cifar.TEST_BATCH])
    assert np.load(tiny / "batches" / "npy" / "data_batch_1.npy").shape == (20, 32, 32, 3)


def test_every_format_holds_the_source_pixels(tiny, data_dir):
    train, test = cifar.read(data_dir / "sources" / "tiny-cifar" / cifar.FOLDER)
    source = np.concatenate([train.images, test.images])
    for i in (0, 57, 119):
        assert np.array_equal(np.asarray(Image.open(tiny / "png" / f"{i:05d}.png")), source[i])
        assert np.array_equal(np.load(tiny / "npy" / f"{i:05d}.npy"), source[i])
        for fmt in ("pickle-p2", "pickle-p5"):
            assert np.array_equal(np.load(tiny / fmt / f"{i:05d}.pkl", allow_pickle=True), source[i])
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
    assert len(lines) == 120 * len(materialize.FORMATS)
    for line in lines[::37]:
        digest, name = line.split("  ")
        assert hashlib.sha256((tiny / name).read_bytes()).hexdigest() == digest


def test_pickle_p2_is_what_ndarray_dump_writes(tiny, tmp_path):
    a = np.load(tiny / "npy" / "00003.npy")
    a.dump(tmp_path / "dumped.pkl")
    assert (tmp_path / "dumped.pkl").read_bytes() == (tiny / "pickle-p2" / "00003.pkl").read_bytes()


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
    return [sys.executable, "-m", "imgload", "data", "prepare", str(manifest), "--data-dir", str(data_dir), "-q"]


def test_prepare_killed_midway_leaves_no_usable_partial_and_recovers(manifests, tmp_path):
    proc = subprocess.Popen(_prepare_cmd(manifests["small"], tmp_path), cwd=REPO)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".tiny-cifar.partial-*/png/*")) and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "tiny-cifar").exists(), "an interrupted prepare must not expose the set"
    out = subprocess.run(_prepare_cmd(manifests["small"], tmp_path), cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(tmp_path / "tiny-cifar")
    assert not list(tmp_path.glob(".tiny-cifar.partial-*")), "stale partial folders are cleaned up"
    assert json.loads((tmp_path / "tiny-cifar" / "index.json").read_text())["count"] == 120


def test_concurrent_prepares_build_once_and_agree(manifests, tiny, tmp_path):
    procs = [subprocess.Popen(_prepare_cmd(manifests["small"], tmp_path), cwd=REPO, stdout=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0]
    assert outs == [str(tmp_path / "tiny-cifar")] * 3
    assert (tmp_path / "tiny-cifar" / "SHA256SUMS").read_bytes() == (tiny / "SHA256SUMS").read_bytes()
    assert not list(tmp_path.glob(".tiny-cifar.partial-*"))


def test_unwritable_data_dir_is_one_clear_line(manifests, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")  # a data dir below a regular file cannot be created, even by root
    out = subprocess.run(_prepare_cmd(manifests["small"], blocker / "data"), cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and str(blocker / "data") in out.stderr and "not writable" in out.stderr


def test_unknown_dataset_names_the_known_ones(tmp_path):
    out = subprocess.run([sys.executable, "-m", "imgload", "data", "prepare", "no-such-set", "--data-dir", str(tmp_path)],
                         cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 2 and "synthetic-cifar10" in out.stderr and out.stderr.count("\n") == 1


def test_data_dir_defaults_to_env_then_repo(clean_env, monkeypatch, tmp_path):
    assert datasets.data_root() == REPO / ".data"
    monkeypatch.setenv("IMGLOAD_DATA_DIR", str(tmp_path))
    assert datasets.data_root() == tmp_path


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
