"""The external commands the tests, the demo and the benchmarks run (``deps/commands.tsv``).

``make deps`` installs the Debian package of every command listed there. ``guard`` is an audit
hook (installed by ``tests/conftest.py``) that refuses to start a command looked up on PATH
which the list does not name: a test that needs a new tool fails on every machine, not only
on the machines that happen to lack it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REGISTRY_PATH = Path(__file__).resolve().parents[2] / "deps" / "commands.tsv"
SBIN_PATH = "/usr/local/sbin:/usr/sbin:/sbin"


class UnlistedCommand(RuntimeError):
    """A test ran a command that ``deps/commands.tsv`` does not list."""


def registry(path: Path = REGISTRY_PATH) -> dict[str, str]:
    """Command name -> the Debian package that installs it."""
    listed = {}
    for line in path.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        command, package = line.split("\t")
        listed[command] = package
    return listed


def missing(listed: dict[str, str]) -> dict[str, str]:
    """The listed commands not found on PATH (plus the sbin directories), with their package."""
    search = f"{os.environ.get('PATH', '')}:{SBIN_PATH}"
    return {cmd: pkg for cmd, pkg in listed.items() if shutil.which(cmd, path=search) is None}


def programs(argv: Sequence[str]) -> list[str]:
    """The programs an argv runs: its first word and, for ``ip netns exec NS CMD``,
    ``nsenter [OPTIONS] CMD`` and ``unshare [OPTIONS] CMD``, the wrapped command too."""
    if not argv:
        return []
    found = [argv[0]]
    name = os.path.basename(argv[0])
    rest = list(argv[1:])
    if name == "ip" and rest[:2] == ["netns", "exec"] and len(rest) > 3:
        found += programs(rest[3:])
    elif name in ("nsenter", "unshare"):
        words = [w for w in rest if not w.startswith("-")]
        options_with_values = {"--propagation"}
        skip = {rest[i + 1] for i, w in enumerate(rest[:-1]) if w in options_with_values}
        words = [w for w in words if w not in skip]
        found += programs(rest[rest.index(words[0]) :]) if words else []
    return found


def unlisted(argv: Sequence[str], listed: dict[str, str]) -> list[str]:
    """The programs of ``argv`` looked up on PATH (no slash) that the registry does not list."""
    return [p for p in programs(argv) if "/" not in p and p not in listed]


def guard(listed: dict[str, str]) -> Any:
    """An audit hook for ``sys.addaudithook`` that raises ``UnlistedCommand``."""

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event != "subprocess.Popen":
            return
        argv = args[1]
        if isinstance(argv, (str, bytes, os.PathLike)):
            argv = [argv]
        words = [os.fsdecode(w) for w in argv]
        bad = unlisted(words, listed)
        if bad:
            raise UnlistedCommand(
                f"a test runs {bad[0]!r}, which deps/commands.tsv does not list: add it there "
                "with the Debian package that installs it, so `make deps` installs it"
            )

    return hook
