"""``config.logsetup``: Go's line format and levels, lumberjack-like rotation of ``logFile``."""

from __future__ import annotations

import gzip
import logging
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pymultus.config.logfile import RotatingLog
from pymultus.config.logging import LogLevel, LogOptions, LogSettings
from pymultus.config.logsetup import apply

LINE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \[(panic|error|verbose|debug)\] .*")
MB = 1024 * 1024


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    """A logger of its own (the root logger belongs to pytest here)."""
    lg = logging.getLogger(f"pmtest.{time.monotonic_ns()}")
    lg.propagate = False
    try:
        yield lg
    finally:
        for handler in list(lg.handlers):
            lg.removeHandler(handler)
            handler.close()


def emit_all(lg: logging.Logger) -> None:
    lg.debug("d")
    lg.info("i")
    lg.warning("w")
    lg.error("e")
    lg.critical("c")


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        (None, ["[panic] c"]),
        (LogLevel.PANIC, ["[panic] c"]),
        (LogLevel.ERROR, ["[error] e", "[panic] c"]),
        (LogLevel.VERBOSE, ["[verbose] i", "[verbose] w", "[error] e", "[panic] c"]),
        (LogLevel.DEBUG, ["[debug] d", "[verbose] i", "[verbose] w", "[error] e", "[panic] c"]),
    ],
)
def test_levels_and_line_format(
    logger: logging.Logger,
    capsys: pytest.CaptureFixture[str],
    level: LogLevel | None,
    expected: list[str],
) -> None:
    apply(LogSettings(level=level, to_stderr=True), logger=logger)

    emit_all(logger)

    lines = capsys.readouterr().err.splitlines()
    assert all(LINE.fullmatch(line) for line in lines), lines
    assert [line.split(" ", 1)[1] for line in lines] == expected


def test_file_only_and_no_stderr(
    logger: logging.Logger, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "a" / "b" / "multus.log"
    apply(LogSettings(level=LogLevel.ERROR, file=str(path), to_stderr=False), logger=logger)

    emit_all(logger)

    assert capsys.readouterr().err == ""
    assert [line.split(" ", 1)[1] for line in path.read_text().splitlines()] == [
        "[error] e",
        "[panic] c",
    ]


def test_a_log_file_that_cannot_be_opened_is_reported_not_raised(
    logger: logging.Logger, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "file").write_text("")
    apply(LogSettings(file=str(tmp_path / "file" / "x.log"), to_stderr=False), logger=logger)

    logger.critical("still fine")

    assert "multus logging: cannot open log file" in capsys.readouterr().err


def fill(handler: RotatingLog, megabytes: float) -> None:
    lg = logging.getLogger(f"pmfill.{time.monotonic_ns()}")
    lg.propagate = False
    lg.addHandler(handler)
    chunk = "x" * 1023
    for _ in range(int(megabytes * 1024)):
        lg.critical(chunk)
    lg.removeHandler(handler)
    handler.close()


def test_rotation_keeps_max_backups_gzipped(tmp_path: Path) -> None:
    path = tmp_path / "multus.log"

    fill(RotatingLog(str(path), LogOptions(max_size=1, max_backups=2, compress=True)), 3.5)

    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "multus.log",
        "multus.log.1.gz",
        "multus.log.2.gz",
    ]
    rotated = gzip.decompress((tmp_path / "multus.log.1.gz").read_bytes())
    assert 0.9 * MB < len(rotated) <= MB
    assert rotated.endswith(b"x\n")


def test_zero_backups_keeps_them_all_uncompressed(tmp_path: Path) -> None:
    path = tmp_path / "multus.log"

    fill(RotatingLog(str(path), LogOptions(max_size=1, max_backups=0, compress=False)), 6.5)

    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "multus.log",
        *(f"multus.log.{i}" for i in range(1, 7)),
    ]


def test_rotated_files_older_than_max_age_are_removed(tmp_path: Path) -> None:
    path = tmp_path / "multus.log"
    old, young, other = tmp_path / "multus.log.4", tmp_path / "multus.log.3", tmp_path / "keep.4"
    for p in (old, young, other):
        p.write_text("rotated before\n")
    ten_days_ago = time.time() - 10 * 86400
    for p in (old, other):
        os.utime(p, (ten_days_ago, ten_days_ago))

    fill(RotatingLog(str(path), LogOptions(max_size=1, max_age=5, compress=False)), 1.5)

    # The rotation shifted .4 to .5 and .3 to .4; the old one went, the young one and a file
    # that is no rotated file of this log stayed.
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "keep.4",
        "multus.log",
        "multus.log.1",
        "multus.log.4",
    ]
    assert (tmp_path / "multus.log.4").stat().st_mtime > ten_days_ago + 86400
