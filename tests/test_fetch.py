"""Remote datasets, all offline: a server on 127.0.0.1 started here, and file mirrors."""

import io
import os
import re
import signal
import subprocess
import sys
import tarfile
import time

import numpy as np
import pytest
from PIL import Image

from imgload import cifar, datasets, fetch

from .helpers import (
    N_TEST,
    N_TRAIN,
    REPO,
    Handler,
    Lines,
    cifar_tree,
    gated,
    reaped,
    remote_manifest,
    serve,
    tar_gz,
)


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    d = tmp_path_factory.mktemp("archive")
    imgs, labels = cifar_tree(d / "src")
    path = d / "cifar-10-python.tar.gz"
    return path, tar_gz(d / "src", path), imgs, labels


@pytest.fixture
def server(archive):
    with serve(archive[0].read_bytes(), "cifar-10-python.tar.gz") as httpd:
        yield httpd


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    monkeypatch.setattr(fetch, "RETRIES", 1)  # one retry (pooch waits 1 s) keeps the tests short
    monkeypatch.delenv("IMGLOAD_MIRROR", raising=False)


CLOSED = "http://127.0.0.1:9/cifar-10-python.tar.gz"  # discard port: nothing listens


def _leftovers(data_dir):
    return (
        sorted(p.name for p in (data_dir / "downloads").iterdir())
        if (data_dir / "downloads").exists()
        else []
    )


def test_fetched_archive_prepares_every_image_exactly(archive, server, tmp_path):
    _, md5, imgs, labels = archive
    path = datasets.prepare(remote_manifest(tmp_path, server.url, md5), tmp_path / "data")
    index = datasets.load_index(path)
    assert index["count"] == N_TRAIN + N_TEST and index["labels"] == labels.tolist()
    assert index["filenames"][:2] == ["img_0.png", "img_1.png"]
    for i in range(N_TRAIN + N_TEST):
        assert np.array_equal(np.asarray(Image.open(path / "png" / f"{i:05d}.png")), imgs[i])
    requests = server.requests
    assert datasets.prepare(remote_manifest(tmp_path, server.url, md5), tmp_path / "data") == path
    assert server.requests == requests, "a prepared set is reused without fetching"


def test_url_option_replaces_the_manifest_url(archive, server, tmp_path):
    manifest = remote_manifest(tmp_path, CLOSED, archive[1])
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "imgload",
            "data",
            "prepare",
            str(manifest),
            "--url",
            server.url,
            "--data-dir",
            str(tmp_path / "data"),
            "-q",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(tmp_path / "data" / "remote-cifar")


def test_wrong_hash_says_expected_and_got_and_keeps_nothing(archive, server, tmp_path):
    wrong = "0" * 32
    with pytest.raises(datasets.DatasetError) as e:
        datasets.prepare(remote_manifest(tmp_path, server.url, wrong), tmp_path / "data")
    assert wrong in str(e.value) and archive[1] in str(e.value)
    assert _leftovers(tmp_path / "data") == []
    assert not (tmp_path / "data" / "remote-cifar").exists()


def test_truncated_download_fails_cleanly(archive, server, tmp_path):
    server.truncate = True
    with pytest.raises(
        datasets.DatasetError,
        match=r"127.0.0.1.*download failed after 2 attempts: IncompleteRead\(\d+ bytes read",
    ):
        datasets.prepare(remote_manifest(tmp_path, server.url, archive[1]), tmp_path / "data")
    assert server.requests == 2  # first try and one retry
    assert _leftovers(tmp_path / "data") == []


def test_unreachable_server_gives_the_root_cause(archive, tmp_path):
    with pytest.raises(datasets.DatasetError) as e:
        datasets.prepare(remote_manifest(tmp_path, CLOSED, archive[1]), tmp_path / "data")
    assert (
        str(e.value)
        == f"{CLOSED}: download failed after 2 attempts: [Errno 111] Connection refused"
    )


def test_server_error_then_success_is_retried(archive, server, tmp_path):
    server.fail_first = 1
    path = datasets.prepare(remote_manifest(tmp_path, server.url, archive[1]), tmp_path / "data")
    assert server.requests == 2 and (path / datasets.MARKER).is_file()


def test_mirror_folder_is_used_first(archive, tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "cifar-10-python.tar.gz").write_bytes(archive[0].read_bytes())
    monkeypatch.setenv("IMGLOAD_MIRROR", str(mirror))
    path = datasets.prepare(remote_manifest(tmp_path, CLOSED, archive[1]), tmp_path / "data")
    assert datasets.load_index(path)["count"] == N_TRAIN + N_TEST


def test_corrupt_mirror_copy_is_an_error_naming_it(archive, tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "cifar-10-python.tar.gz").write_bytes(archive[0].read_bytes()[:-10])
    monkeypatch.setenv("IMGLOAD_MIRROR", str(mirror))
    with pytest.raises(datasets.DatasetError, match=f"{mirror}.*expected {archive[1]}"):
        datasets.prepare(remote_manifest(tmp_path, CLOSED, archive[1]), tmp_path / "data")
    assert _leftovers(tmp_path / "data") == []


def test_manifest_without_hash_is_refused(tmp_path):
    text = (
        (REPO / "datasets" / "cifar10.toml")
        .read_text()
        .replace('hash = "md5:c58f30108f718f92721af3b95e74349a"\n', "")
    )
    (tmp_path / "nohash.toml").write_text(text)
    with pytest.raises(datasets.DatasetError, match="needs hash"):
        datasets.manifest(tmp_path / "nohash.toml")


def test_unsupported_layout_is_refused_before_any_download(tmp_path):
    text = (
        (REPO / "datasets" / "cifar10.toml")
        .read_text()
        .replace('layout = "cifar-python"', 'layout = "arrays"')
    )
    (tmp_path / "arrays.toml").write_text(text)
    with pytest.raises(
        datasets.DatasetError, match="layout 'arrays' is not supported for url sources"
    ):
        datasets.manifest(tmp_path / "arrays.toml")


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_archive_with_a_malicious_batch_is_refused_before_it_runs(tmp_path, server):
    marker = tmp_path / "payload-ran"
    cifar_tree(
        tmp_path / "src", payload={"data": _Payload(str(marker)), "labels": [], "filenames": []}
    )
    evil = tmp_path / "cifar-10-python.tar.gz"
    md5 = tar_gz(tmp_path / "src", evil)
    server.body = evil.read_bytes()
    with pytest.raises(datasets.DatasetError, match="refusing .*data_batch_1.*open"):
        datasets.prepare(remote_manifest(tmp_path, server.url, md5), tmp_path / "data")
    assert not marker.exists()
    assert not (tmp_path / "data" / "remote-cifar").exists()


def _hostile_tar(path, kind):
    with tarfile.open(path, "w") as tar:
        ok = tarfile.TarInfo("cifar-10-batches-py/ok.txt")
        ok.size = 2
        tar.addfile(ok, io.BytesIO(b"ok"))
        bad = tarfile.TarInfo(
            {
                "dotdot": "../x",
                "absolute": "/tmp/imgload-abs-x",
                "symlink": "link",
                "hardlink": "hard",
                "device": "dev",
            }[kind]
        )
        if kind == "symlink":
            bad.type, bad.linkname = tarfile.SYMTYPE, "../../outside"
        elif kind == "hardlink":
            bad.type, bad.linkname = tarfile.LNKTYPE, "../outside"
        elif kind == "device":
            bad.type, bad.devmajor, bad.devminor = tarfile.CHRTYPE, 1, 3
        else:
            bad.size = 4
        tar.addfile(bad, io.BytesIO(b"evil") if bad.isfile() else None)


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink", "hardlink", "device"])
def test_hostile_tar_members_are_refused_and_nothing_is_written(tmp_path, kind):
    archive = tmp_path / "a.tar"
    _hostile_tar(archive, kind)
    target = tmp_path / "out" / "sources"
    target.parent.mkdir()
    with pytest.raises(fetch.FetchError, match="refused member"):
        fetch.unpack(archive, target)
    assert list(target.parent.iterdir()) == []
    assert not (tmp_path / "x").exists() and not (tmp_path / "out" / "x").exists()
    assert not os.path.exists("/tmp/imgload-abs-x")


def test_hostile_zip_member_is_refused(tmp_path):
    import zipfile

    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ok.txt", "ok")
        zf.writestr("../escape.txt", "evil")
    with pytest.raises(fetch.FetchError, match="refused member '../escape.txt'"):
        fetch.unpack(archive, tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "out").exists()


def _kill_prepare_when(manifest, data, condition, moment):
    """Start a prepare in a subprocess and SIGKILL it as soon as condition() holds."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "imgload",
            "data",
            "prepare",
            str(manifest),
            "--data-dir",
            str(data),
            "-q",
        ],
        cwd=REPO,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.005)
    assert condition(), f"the kill must land {moment}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()


class _SlowHandler(Handler):
    def do_GET(self):
        self.server.requests += 1
        body = self.server.body
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        for i in range(0, len(body), 4096):
            self.wfile.write(body[i : i + 4096])
            self.wfile.flush()
            time.sleep(0.05)


def _downloading(data) -> bool:
    """pooch's temporary file, in the download's own scratch folder, exists and has bytes in it
    (a failed attempt's may vanish meanwhile)."""
    for part in data.glob("downloads/.cifar-10-python.tar.gz.partial-*/tmp*"):
        try:
            if part.stat().st_size > 0:
                return True
        except FileNotFoundError:
            pass
    return False


def test_prepare_killed_during_download_recovers(archive, server, tmp_path):
    data = tmp_path / "data"
    with serve(archive[0].read_bytes(), "cifar-10-python.tar.gz", _SlowHandler) as slow:
        _kill_prepare_when(
            remote_manifest(tmp_path, slow.url, archive[1]),
            data,
            lambda: _downloading(data),
            "mid-download",
        )
        assert not (data / "downloads" / "cifar-10-python.tar.gz").exists(), (
            "a partial download is never renamed into place"
        )
        assert not (data / "remote-cifar").exists()
    path = datasets.prepare(remote_manifest(tmp_path, server.url, archive[1]), data)
    assert datasets.load_index(path)["count"] == N_TRAIN + N_TEST
    assert _leftovers(data) == ["cifar-10-python.tar.gz"], "stale temporary downloads are removed"


def test_stale_download_clean_up_touches_only_this_archives_scratch(archive, server, tmp_path):
    """A killed fetch's scratch folder goes; a user's tmp_notes.txt, another tool's tmp file and
    another archive's download under way stay (a `tmp*` glob once deleted them)."""
    downloads = tmp_path / "data" / "downloads"
    kept = {
        "tmp_notes.txt": b"notes",
        "tmpk2x9": b"another tool's",
        ".other.tar.gz.part-5/tmpq1": b"other download",
        "cifar-10-python.tar.gz.part-1": b"not a name fetch gives",
    }
    for rel, body in {**kept, ".cifar-10-python.tar.gz.part-77/tmpzz": b"half"}.items():
        (downloads / rel).parent.mkdir(parents=True, exist_ok=True)
        (downloads / rel).write_bytes(body)
    datasets.prepare(remote_manifest(tmp_path, server.url, archive[1]), tmp_path / "data")
    assert not (downloads / ".cifar-10-python.tar.gz.part-77").exists()
    assert {rel: (downloads / rel).read_bytes() for rel in kept} == kept
    assert sorted(p.name for p in downloads.iterdir()) == sorted(
        [
            ".other.tar.gz.part-5",
            "cifar-10-python.tar.gz",
            "cifar-10-python.tar.gz.part-1",
            "tmp_notes.txt",
            "tmpk2x9",
        ]
    )


def _prepare_cli(manifest, data, *extra):
    return subprocess.run(
        [sys.executable, "-m", "imgload", "data", *extra, str(manifest), "--data-dir", str(data)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )


def test_verify_names_the_first_bad_file(manifests, tmp_path):
    path = datasets.prepare(manifests["large"], tmp_path)
    ok = _prepare_cli(manifests["large"], tmp_path, "verify")
    assert ok.returncode == 0 and "12 files match SHA256SUMS" in ok.stdout
    victim = path / "png" / "00002.png"
    original = victim.read_bytes()
    for damage, message in [
        (original[: len(original) // 2], "content differs"),
        (b"", "zero bytes"),
        (original[:-1] + bytes([original[-1] ^ 1]), "content differs"),
    ]:
        victim.write_bytes(damage)
        out = _prepare_cli(manifests["large"], tmp_path, "verify")
        assert (
            out.returncode == 1
            and f"{victim}: {message}" in out.stderr
            and out.stderr.count("\n") == 1
        )
    victim.unlink()
    out = _prepare_cli(manifests["large"], tmp_path, "verify")
    assert out.returncode == 1 and f"{victim}: missing" in out.stderr


def test_prepare_rebuilds_a_set_that_lost_files(manifests, tmp_path):
    path = datasets.prepare(manifests["large"], tmp_path)
    last = path / "jpeg" / "00005.jpg"
    last.unlink()
    assert datasets.prepare(manifests["large"], tmp_path) == path
    assert last.is_file() and datasets.first_problem(path) is None


def test_prepare_killed_during_unpack_recovers(tmp_path, server):
    # zeros compress to almost nothing but take a while to write: time enough to land a kill
    cifar_tree(tmp_path / "src")
    with open(tmp_path / "src" / cifar.FOLDER / "padding.bin", "wb") as f:
        f.truncate(400 << 20)
    archive = tmp_path / "cifar-10-python.tar.gz"
    md5 = tar_gz(tmp_path / "src", archive)
    server.body = archive.read_bytes()
    manifest, data = remote_manifest(tmp_path, server.url, md5), tmp_path / "data"
    _kill_prepare_when(
        manifest, data, lambda: any(data.glob("sources/.remote-cifar.partial-*/*")), "mid-unpack"
    )
    assert not (data / "sources" / "remote-cifar").exists(), (
        "a partial unpack is never renamed into place"
    )
    path = datasets.prepare(manifest, data)
    assert datasets.load_index(path)["count"] == N_TRAIN + N_TEST
    assert not list(data.glob("sources/.remote-cifar.partial-*")), (
        "the stale partial unpack is removed"
    )
    assert server.requests == 1, (
        "the verified archive from the killed run is reused, not fetched again"
    )


def _timed_log():
    """A log that keeps (seconds since it was made, line)."""
    start, lines = time.monotonic(), []
    return (lambda msg: lines.append((time.monotonic() - start, msg))), lines


def test_off_a_terminal_a_download_says_how_far_at_least_every_progress_interval(
    archive, tmp_path, monkeypatch
):
    """asv captures setup_cache's output and stops it after a stretch without any: lines, not a
    bar, and never a silence longer than PROGRESS_SECONDS while bytes arrive."""
    monkeypatch.setattr(fetch, "PROGRESS_SECONDS", 0.25)
    log, lines = _timed_log()
    with serve(archive[0].read_bytes(), "cifar-10-python.tar.gz", _SlowHandler) as slow:
        datasets.prepare(
            remote_manifest(tmp_path, slow.url, archive[1]), tmp_path / "data", log=log
        )
    fetching = next(t for t, msg in lines if msg.startswith("fetching cifar-10-python.tar.gz"))
    done = next(
        t
        for t, msg in lines
        if re.fullmatch(r"cifar-10-python\.tar\.gz: [0-9.]+ MB downloaded in \d+ s", msg)
    )
    progress = [
        t
        for t, msg in lines
        if re.fullmatch(
            r"cifar-10-python\.tar\.gz: [0-9.]+ MB of [0-9.]+ MB \(\d+%\), [0-9.]+ MB/s", msg
        )
    ]
    assert len(progress) >= 2, lines
    stamps = [fetching, *progress, done]
    assert max(b - a for a, b in zip(stamps, stamps[1:])) < 0.25 + 0.5, (
        lines
    )  # + one slow chunk and the connection


def test_a_prepare_waiting_for_another_says_so_until_it_gets_the_lock(
    manifests, tmp_path, monkeypatch
):
    """Under asv the wait is a setup_cache waiting for another environment's prepare:
    it must speak."""
    import fcntl
    import threading

    monkeypatch.setattr(datasets, "LOCK_HEARTBEAT", 0.3)
    name = datasets.manifest(manifests["large"]).name
    lock = tmp_path / ".locks" / f"{name}.lock"
    lock.parent.mkdir(parents=True)
    log, lines = _timed_log()
    with open(lock, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another process's prepare, as far as the lock can tell
        waiter = threading.Thread(
            target=datasets.prepare, args=(manifests["large"], tmp_path), kwargs={"log": log}
        )
        waiter.start()
        time.sleep(1.2)
        assert waiter.is_alive() and not (tmp_path / name).exists(), (
            "nothing is prepared while another holds the lock"
        )
        fcntl.flock(held, fcntl.LOCK_UN)
    waiter.join(60)
    messages = [msg for _, msg in lines]
    assert messages[0] == f"waiting for another process preparing {name} (lock {lock})"
    assert (
        sum(
            msg.startswith(f"still waiting for another process preparing {name} (")
            for msg in messages
        )
        >= 2
    )
    assert (tmp_path / name / datasets.MARKER).is_file()


def test_concurrent_prepares_download_once(archive, tmp_path):
    """Two processes (two environments' setup_cache, or `make data` beside one) fetch one archive
    once: the second waits for the first one's lock, says so, and then finds the set prepared."""
    data = tmp_path / "data"
    with gated(archive[0].read_bytes(), "cifar-10-python.tar.gz") as server:
        command = [
            sys.executable,
            "-m",
            "imgload",
            "data",
            "prepare",
            str(remote_manifest(tmp_path, server.url, archive[1])),
            "--data-dir",
            str(data),
        ]
        with reaped(
            [
                subprocess.Popen(
                    command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
                )
            ]
        ) as procs:
            deadline = time.monotonic() + 60
            while server.requests == 0 and procs[0].poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert server.requests == 1, "the first prepare is downloading"
            procs.append(
                subprocess.Popen(
                    command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
                )
            )
            waits = Lines(procs[1].stderr)
            assert waits.wait_for(
                "imgload: waiting for another process preparing remote-cifar", 60
            ), waits.text()
            server.gate.set()
            outs = [procs[0].communicate(timeout=120), (procs[1].stdout.read(), waits.text())]
            assert [procs[0].returncode, procs[1].wait(timeout=120)] == [0, 0], outs
    assert server.requests == 1
    assert outs[0][0] == outs[1][0] == f"{data / 'remote-cifar'}\n"
