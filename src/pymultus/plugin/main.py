"""The thin ``multus`` CNI plugin: one process per CNI call, API server read directly.

This is the process's only error boundary: every ``CniError`` becomes CNI error JSON on
stdout with exit status 1; anything else is a bug and becomes code 999 with the same shape.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from pymultus import __version__
from pymultus.cni import gojson
from pymultus.cni.convert import AnyResult, convert, encode_result
from pymultus.cni.env import parse_plugin_env
from pymultus.cni.errors import CniError, InternalError
from pymultus.cni.version import ALL_VERSIONS, CURRENT, require_known
from pymultus.config.multus import MultusConf, parse_multus_conf
from pymultus.core.deps import Deps
from pymultus.core.request import Request

ABOUT = f"multus (pymultus {__version__}): meta-plugin that delegates to other CNI plugins"


@contextmanager
def thin_deps(conf: MultusConf, command: str = "ADD") -> Iterator[Deps]:
    """API-backed sources when a kubeconfig or in-cluster credentials exist; none otherwise
    (only static delegates and files then). lightkube is imported only when needed, and its
    connections are closed on exit.

    A kubeconfig that cannot be used fails every verb but DEL: DEL must succeed for a pod whose
    node credentials are already gone, and it has the delegate and libcni caches to go by
    (Go Multus fails that DEL).
    """
    if not conf.kubeconfig and not os.environ.get("KUBERNETES_SERVICE_HOST"):
        yield Deps()
        return
    from pymultus.k8s.client import KubeApi, load_client  # noqa: PLC0415 - start-up cost
    from pymultus.k8s.sources import ApiEvents, ApiNads, ApiPods, ApiStatus  # noqa: PLC0415

    try:
        client = load_client(conf.kubeconfig or None)
    except CniError:
        if command != "DEL":
            raise
        client = None
    if client is None:
        yield Deps()
        return
    api = KubeApi(client)
    try:
        yield Deps(
            pods=ApiPods(api), nads=ApiNads(api), status=ApiStatus(api), events=ApiEvents(api)
        )
    finally:
        client.close()


def version_info() -> bytes:
    return gojson.marshal({"cniVersion": CURRENT, "supportedVersions": list(ALL_VERSIONS)})


def handle(environ: Mapping[str, str], stdin: bytes) -> bytes:
    """Run one CNI call; returns what to print (may be empty)."""
    cmd = parse_plugin_env(environ, stdin)
    if cmd.command == "VERSION":
        return version_info()
    from pymultus.core.dispatch import run  # noqa: PLC0415 - not needed for VERSION

    conf = parse_multus_conf(stdin)
    require_known(conf.cni_version)
    with thin_deps(conf, cmd.command) as deps:
        result = run(Request.build(cmd, conf), deps)
    return _print(result, conf) if result is not None else b""


def _print(result: AnyResult, conf: MultusConf) -> bytes:
    """The result in the config's cniVersion, which is what the runtime asked for (Go prints
    the cluster network's result in that delegate's own version, §11 item 14)."""
    if conf.cni_version:
        result = convert(result, conf.cni_version)
    return encode_result(result, indent=True)


def _config_version(stdin: bytes) -> str:
    try:
        return parse_multus_conf(stdin).cni_version
    except CniError:
        return ""


def main() -> None:
    if not os.environ.get("CNI_COMMAND") and sys.argv[1:2] in (["-v"], ["-version"], ["--version"]):
        print(f"multus: pymultus {__version__}")
        return
    if not os.environ.get("CNI_COMMAND"):
        print(f"{ABOUT}\nCNI protocol versions supported: {', '.join(ALL_VERSIONS)}")
        return
    stdin = sys.stdin.buffer.read()
    try:
        out = handle(os.environ, stdin)
    except CniError as err:
        sys.stdout.buffer.write(err.to_json(_config_version(stdin)))
        sys.exit(1)
    except Exception as exc:  # the one boundary: a bug must still answer in CNI's shape
        bug = InternalError(f"internal error: {type(exc).__name__}: {exc}")
        sys.stdout.buffer.write(bug.to_json(_config_version(stdin)))
        sys.exit(1)
    sys.stdout.buffer.write(out)
