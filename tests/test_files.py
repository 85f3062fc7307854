import os
import subprocess
import sys
from pathlib import Path

import pytest

from imgload import files
from imgload.files import write_atomic


def test_write_atomic_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "deep" / "a.toml"
    write_atomic(path, "one")
    write_atomic(path, "two")
    assert path.read_text() == "two" and [p.name for p in path.parent.iterdir()] == ["a.toml"]


def test_a_refused_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "a.toml"
    path.write_text("good")
    seen = []

    def refuse(tmp):
        seen.append(tmp.suffix)
        raise ValueError("does not load")

    with pytest.raises(ValueError):
        write_atomic(path, "bad", check=refuse)
    assert path.read_text() == "good" and [p.name for p in tmp_path.iterdir()] == ["a.toml"]
    assert seen == [".toml"]  # checks that go by the suffix see the real one


# ---------------------------------------------------------------- one scratch scheme


def test_the_scratch_name_is_hidden_beside_the_target_and_keeps_its_suffix(tmp_path):
    pid = os.getpid()
    assert files.scratch_path(tmp_path / "a.toml") == tmp_path / f".a.toml.partial-{pid}.toml"
    assert files.scratch_path(tmp_path / "tiny-cifar") == tmp_path / f".tiny-cifar.partial-{pid}"
    assert (
        files.scratch_path(tmp_path / "tiny-cifar", files.DISCARD)
        == tmp_path / f".tiny-cifar.partial-discard-{pid}"
    )
    assert files.is_scratch(files.scratch_path(tmp_path / "x.tar.gz").name, "x.tar.gz")


@pytest.mark.parametrize(
    "name",
    [
        ".own.partial-12",
        ".own.partial-discard-9",
        ".own.part-3",
        ".own.tar.gz.partial-7.gz",
        ".own.tar.gz.partial-7",
    ],
)
def test_scratch_names_are_recognized(name):
    own = "own.tar.gz" if ".tar.gz" in name else "own"
    assert files.is_scratch(name, own)


@pytest.mark.parametrize(
    "name",
    [
        "own",
        ".own",
        "own.partial-12",
        ".own.partial-x",
        ".own.partial-12x",
        ".own.partial-",
        ".own.partial-12.gz",
        ".own2.partial-12",
        ".other.partial-12",
        ".own.part-discard-3",
        ".own.tmp-5",
        "..own.partial-1",
        ".own.partial-1/x",
    ],
)
def test_other_names_are_not_scratch(name):
    assert not files.is_scratch(name, "own")
    assert not files.is_scratch(".partial-1", "") and not files.is_scratch("...partial-1", "..")


def test_replacing_puts_a_folder_in_place_whole(tmp_path):
    target = tmp_path / "set"
    with files.replacing(target) as scratch:
        assert scratch.parent == tmp_path and not scratch.exists()
        (scratch / "sub").mkdir(parents=True)
        (scratch / "sub" / "f").write_text("x")
        assert not target.exists()
    assert (target / "sub" / "f").read_text() == "x" and sorted(
        p.name for p in tmp_path.iterdir()
    ) == ["set"]


def test_replacing_removes_the_scratch_when_the_block_fails(tmp_path):
    (tmp_path / "set").mkdir()
    (tmp_path / "set" / "old").write_text("old")
    with pytest.raises(RuntimeError, match="half-way"):
        with files.replacing(tmp_path / "set") as scratch:
            scratch.mkdir()
            (scratch / "new").write_text("new")
            raise RuntimeError("half-way")
    assert (
        sorted(p.name for p in tmp_path.iterdir()) == ["set"]
        and (tmp_path / "set" / "old").read_text() == "old"
    )


def test_replacing_inside_keeps_a_tools_own_temporary_files_in_the_scratch_folder(tmp_path):
    target = tmp_path / "downloads" / "a.tar.gz"
    with files.replacing(target, inside=True) as part:
        assert (
            part.name == "a.tar.gz"
            and part.parent == files.scratch_path(target)
            and part.parent.is_dir()
        )
        (part.parent / "tmpk2x9").write_text("a tool's")
        part.write_bytes(b"archive")
    assert target.read_bytes() == b"archive" and sorted(
        p.name for p in target.parent.iterdir()
    ) == ["a.tar.gz"]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_remove_stale_removes_only_scratch_of_dead_processes_and_never_follows_a_link(tmp_path):
    folder, outside = tmp_path / "data", tmp_path / "outside"
    dead, alive = _dead_pid(), os.getpid()
    for rel in (
        f".own.partial-{dead}/x",
        f".own.part-{dead}",
        f".own.partial-{alive}/x",
        f".other.partial-{dead}/x",
        "own/keep",
        "tmp_notes.txt",
        f"own.partial-{dead}",
        "../outside/keep",
    ):
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text("x")
    (folder / f".own.partial-discard-{dead}").symlink_to(outside)
    files.remove_stale(folder, "own")
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [
            f".own.partial-{alive}",
            f".other.partial-{dead}",
            "own",
            "tmp_notes.txt",
            f"own.partial-{dead}",
        ]
    )
    assert (outside / "keep").is_file()
    files.remove_stale(
        folder, "own", locked=True
    )  # the caller holds the lock: every writer's scratch is stale
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [f".other.partial-{dead}", "own", "tmp_notes.txt", f"own.partial-{dead}"]
    )
    files.remove_stale(tmp_path / "absent", "own")


def test_the_name_or_toml_lookup(tmp_path):
    (tmp_path / "b.toml").write_text("")
    (tmp_path / "a.toml").write_text("")
    (tmp_path / ".a.toml.partial-5.toml").write_text("")
    assert files.toml_path("a", tmp_path) == tmp_path / "a.toml"
    assert files.toml_path("elsewhere/x.toml", tmp_path) == Path("elsewhere/x.toml")
    assert files.known(tmp_path) == ["a", "b"]
