"""``plugin.preload``: the lean path's modules of one verb run from one bundle file, or nothing
at all when the bundle cannot be trusted to be the sources' code. Each case runs in a fresh
interpreter (this one has imported the lean path already)."""

from __future__ import annotations

import json
import marshal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import pymultus
from pymultus.plugin.install import import_paths, with_paths
from pymultus.plugin.preload import FORMAT, ROOTS, bundle_path

SRC = str(Path(pymultus.__file__).resolve().parents[1])
LEAN = "pymultus.plugin.lean"

#: In a fresh interpreter: preload, then what it left in ``sys.modules`` (as JSON).
PROBE = """
import json, sys
sys.path[:0] = [{src!r}]
from pymultus.plugin.preload import preload
loaded = preload({launcher!r}, {verb!r})
lean = sorted(n for n in sys.modules if n.startswith({lean!r}))
attrs = {{}}
for name in lean:
    m = sys.modules[name]
    attrs[name] = [m.__file__, m.__package__, getattr(m, "__path__", None)]
same = False
if loaded and {verb!r} == "DEL":
    from pymultus.plugin.lean import chain, delete
    same = delete.chain is chain is sys.modules["pymultus.plugin.lean.chain"]
print(json.dumps({{"loaded": loaded, "lean": lean, "attrs": attrs, "same": same}}))
"""


def _build(launcher: Path, verb: str) -> Path:
    """As the install builds it: this interpreter with the launcher's ``sys.path``."""
    build = (
        f"from pymultus.plugin.preload import build\nprint(build({str(launcher)!r}, {verb!r}))\n"
    )
    code = with_paths(import_paths(), build)
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code], capture_output=True, check=True, timeout=60
    )
    return Path(out.stdout.decode().strip())


def _probe(launcher: Path, verb: str) -> dict[str, Any]:
    code = PROBE.format(src=SRC, launcher=str(launcher), verb=verb, lean=LEAN)
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code], capture_output=True, check=True, timeout=60
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def _head() -> bytes:
    magic: bytes = sys.modules["_frozen_importlib_external"].MAGIC_NUMBER
    return magic + FORMAT


def _rewrite(bundle: Path, change: Any) -> None:
    """The bundle with its entries passed through ``change``, written as ``build`` writes."""
    entries = marshal.loads(bundle.read_bytes()[len(_head()) :])
    bundle.write_bytes(_head() + marshal.dumps(change(entries)))


@pytest.fixture
def launcher(tmp_path: Path) -> Path:
    path = tmp_path / "multus"
    path.write_text("#!/bin/false\n")
    return path


@pytest.mark.parametrize("verb", sorted(ROOTS))
def test_a_bundle_runs_every_module_of_the_verb_as_an_import_would(
    launcher: Path, verb: str
) -> None:
    bundle = _build(launcher, verb)
    assert bundle == Path(bundle_path(str(launcher), verb))
    assert bundle.name == f".multus.{sys.implementation.cache_tag}.{verb.lower()}.bin"

    result = _probe(launcher, verb)

    assert result["loaded"] is True
    assert set(ROOTS[verb]) <= set(result["lean"])
    where = f"{SRC}/pymultus/plugin/lean"
    assert result["attrs"][LEAN] == [f"{where}/__init__.py", LEAN, [where]]
    assert result["attrs"][f"{LEAN}.main"] == [f"{where}/main.py", LEAN, None]
    if verb == "DEL":
        assert result["same"] is True  # imports after the preload find the preloaded modules
        assert f"{LEAN}.kube" not in result["lean"]  # a DEL's bundle holds no API client


def test_the_order_puts_every_module_after_what_it_imports(launcher: Path) -> None:
    entries = marshal.loads(_build(launcher, "ADD").read_bytes()[len(_head()) :])
    names = [entry[0] for entry in entries]
    assert names.index(f"{LEAN}.errors") < names.index(f"{LEAN}.js") < names.index(f"{LEAN}.add")
    assert names.index(f"{LEAN}.chain") < names.index(f"{LEAN}.add")
    assert len(names) == len(set(names))


def _stale(entries: list[Any]) -> list[Any]:
    name, path, package, mtime, size, code = entries[-1]
    return [*entries[:-1], (name, path, package, mtime + 1, size, code)]


def _raising(entries: list[Any]) -> list[Any]:
    name, path, package, mtime, size, _ = entries[-1]
    return [*entries[:-1], (name, path, package, mtime, size, compile("1 / 0", path, "exec"))]


@pytest.mark.parametrize(
    ("spoil", "left"),
    [
        pytest.param(lambda b: _rewrite(b, _stale), 0, id="a-source-changed"),
        pytest.param(lambda b: b.chmod(0o666), 0, id="writable-by-others"),
        pytest.param(lambda b: b.write_bytes(b"\0" * 4 + b.read_bytes()[4:]), 0, id="foreign"),
        pytest.param(lambda b: b.write_bytes(b.read_bytes()[:-100]), 0, id="truncated"),
        pytest.param(lambda b: b.write_bytes(_head() + marshal.dumps({})), 0, id="not-a-list"),
        pytest.param(lambda b: _rewrite(b, lambda e: [e[0][:5]]), 0, id="short-entry"),
        pytest.param(lambda b: _rewrite(b, lambda e: [(1, *e[0][1:])]), 0, id="name-not-str"),
        pytest.param(lambda b: b.unlink(), 0, id="missing"),
        # every module before the one that raised stays loaded; that one is not left behind
        pytest.param(lambda b: _rewrite(b, _raising), -1, id="a-module-raises"),
    ],
)
def test_a_bundle_that_cannot_be_trusted_loads_nothing(
    launcher: Path, spoil: Any, left: int
) -> None:
    bundle = _build(launcher, "DEL")
    count = len(marshal.loads(bundle.read_bytes()[len(_head()) :]))
    spoil(bundle)

    result = _probe(launcher, "DEL")

    assert result["loaded"] is False
    assert len(result["lean"]) == (count + left if left else 0)


def test_build_leaves_no_temporary_file_and_writes_a_file_only_its_owner_may_change(
    launcher: Path,
) -> None:
    bundle = _build(launcher, "DEL")
    assert sorted(p.name for p in launcher.parent.iterdir()) == sorted(["multus", bundle.name])
    assert bundle.stat().st_mode & 0o022 == 0
