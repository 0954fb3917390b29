"""Atomic writes: whole files or nothing, also when two writers build the same file at once."""

import pytest

from fdenv.atomic import atomic_path


def test_two_writers_of_one_file_do_not_collide(tmp_path):
    target = tmp_path / "cache.pt"
    with atomic_path(target) as first, atomic_path(target) as second:
        assert first != second and first.suffix == second.suffix == ".pt"
        first.write_text("first")
        second.write_text("second")
    assert target.read_text() == "first"  # the outer block renames last
    assert [p.name for p in tmp_path.iterdir()] == ["cache.pt"]


def test_a_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert list(tmp_path.iterdir()) == []
