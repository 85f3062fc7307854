import pytest

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
