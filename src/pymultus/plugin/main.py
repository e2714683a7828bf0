"""The thin ``multus`` CNI plugin's entry point: imports next to nothing before it knows the verb.

The runtime starts one process per CNI call, so what a call imports is what it costs: VERSION
answers from constants (no JSON library, no logging, not even ``os``); ADD and DEL try the lean
path (``plugin.lean``: the interpreter's C modules only), which answers the common pods itself
and hands every other call, untouched, to ``plugin.call``, the full path over the core (see
``docs/architecture.md``, "One call of the thin plugin").

``main(base)`` takes a ``Deps`` whose settings (timeouts, kubelet and device-info paths) the
call starts from; the ``multus`` executable passes none. Tests use it to shorten waits and
point at temporary paths while still running the plugin as a runtime does (the full path
then: the lean path has no ``Deps``).
"""

from __future__ import annotations

import sys
from posix import environ

from pymultus import __version__

TYPE_CHECKING = False  # not typing's: importing typing would cost more than the whole VERSION
if TYPE_CHECKING:
    from pymultus.core.deps import Deps

#: ``cni.version.ALL_VERSIONS`` and ``CURRENT``, as constants (a test pins them equal): the
#: VERSION answer must not import the CNI library.
SUPPORTED = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
ABOUT = f"multus (pymultus {__version__}): meta-plugin that delegates to other CNI plugins"


def version_info() -> bytes:
    """What VERSION prints: Go's JSON bytes of the plugin's version info."""
    versions = ",".join(f'"{v}"' for v in SUPPORTED)
    return f'{{"cniVersion":"{SUPPORTED[-1]}","supportedVersions":[{versions}]}}'.encode()


def main(base: Deps | None = None, *, launcher: str = "") -> None:
    """One CNI call. ``launcher`` is the installed ``multus`` running this (empty otherwise):
    an ADD or DEL loads the lean path from the bundle installed beside it (``preload``)."""
    command = environ.get(b"CNI_COMMAND", b"").decode("utf-8", "surrogateescape")
    if command == "VERSION":
        sys.stdout.buffer.write(version_info())
        return
    if not command and sys.argv[1:2] in (["-v"], ["-version"], ["--version"]):
        print(f"multus: pymultus {__version__}")
        return
    if not command:
        print(f"{ABOUT}\nCNI protocol versions supported: {', '.join(SUPPORTED)}")
        return
    stdin = sys.stdin.buffer.read()
    if base is None and command in ("ADD", "DEL"):
        if launcher:
            from pymultus.plugin.preload import preload  # noqa: PLC0415

            preload(launcher, command)
        from pymultus.plugin.lean.main import run  # noqa: PLC0415 - the common ADD and DEL

        if run(command, stdin):
            return
    from pymultus.plugin.call import run_call  # noqa: PLC0415 - every other call

    run_call(command, base, stdin)
