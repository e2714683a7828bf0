"""The config manager's file helpers: primary discovery and the atomic write."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from pymultus.cni.errors import IOFailure
from pymultus.daemon.confmanager import find_primary, write_if_changed


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["20-b.conflist", "10-a.conf"], "10-a.conf"),
        (["00-multus.conf", "00-multus.conflist", "99-z.conf"], "99-z.conf"),
        (["00-multus-old.conf", "50-x.conflist"], "50-x.conflist"),
        (["10-a.json", "10-a.conf.bak", "20-b.conflist"], "20-b.conflist"),
        (["B.conf", "a.conf"], "B.conf"),  # byte order, as Go's sort.Strings
        (["00-multus.conf"], None),
        ([], None),
    ],
)
def test_find_primary(tmp_path: Path, names: list[str], expected: str | None) -> None:
    for name in names:
        (tmp_path / name).write_text("{}")
    assert find_primary(str(tmp_path)) == expected


def test_find_primary_skips_directories_and_missing_dirs(tmp_path: Path) -> None:
    (tmp_path / "10-dir.conf").mkdir()
    (tmp_path / "20-file.conf").write_text("{}")
    assert find_primary(str(tmp_path)) == "20-file.conf"
    assert find_primary(str(tmp_path / "absent")) is None


def test_write_atomic_writes_mode_and_skips_identical(tmp_path: Path) -> None:
    path = tmp_path / "00-multus.conf"
    assert write_if_changed(str(path), b"one", 0o600) is True
    assert path.read_bytes() == b"one"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    inode = path.stat().st_ino
    assert write_if_changed(str(path), b"one", 0o600) is False
    assert path.stat().st_ino == inode  # left alone
    path.chmod(0o644)
    assert write_if_changed(str(path), b"one", 0o600) is True  # a wrong mode is fixed
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert write_if_changed(str(path), b"two", 0o600) is True
    assert path.read_bytes() == b"two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["00-multus.conf"]


def test_write_atomic_failure_is_an_io_error_naming_the_path(tmp_path: Path) -> None:
    target = tmp_path / "missing-dir" / "00-multus.conf"
    with pytest.raises(IOFailure) as err:
        write_if_changed(str(target), b"x", 0o600)
    assert err.value.path == str(target)
    assert err.value.code == 5
