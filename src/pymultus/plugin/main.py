"""The thin ``multus`` CNI plugin: one process per CNI call, API server read directly.

Where pods and NADs come from:

- a kubeconfig (or in-cluster credentials): the API server;
- neither, and the config names a ``clusterNetwork`` or one of ``nadDir``/``podDir``/
  ``statusDir``: standalone mode (``core.standalone``: NAD and pod files, network-status in a
  state directory);
- neither, and only static ``delegates``: nothing but the delegates, exactly as Go Multus
  runs them (no pod lookup, no status, no file read or written besides the caches).

This is the process's only error boundary: every ``CniError`` becomes CNI error JSON on
stdout with exit status 1; anything else is a bug and becomes code 999 with the same shape.
Logging is set up here too, once, from the config's ``logLevel``/``logFile``/``logToStderr``
(``config.logsetup``; stderr is on by default in thin mode, the level is ``panic``).

``main(base)`` takes a ``Deps`` whose settings (timeouts, kubelet and device-info paths) the
call starts from; the ``multus`` executable passes none. Tests use it to shorten waits and
point at temporary paths while still running the plugin as a runtime does.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace

from pymultus import __version__
from pymultus.cni import gojson
from pymultus.cni.convert import AnyResult, convert, encode_result
from pymultus.cni.env import parse_plugin_env
from pymultus.cni.errors import CniError, InternalError
from pymultus.cni.version import ALL_VERSIONS, CURRENT, require_known
from pymultus.config import logsetup
from pymultus.config.logging import LogSettings
from pymultus.config.multus import MultusConf, parse_multus_conf
from pymultus.core.deps import Deps
from pymultus.core.request import Request

ABOUT = f"multus (pymultus {__version__}): meta-plugin that delegates to other CNI plugins"

log = logging.getLogger("pymultus.plugin")


def has_kubernetes(conf: MultusConf) -> bool:
    """A kubeconfig in the config, or in-cluster credentials in the environment."""
    return bool(conf.kubeconfig or os.environ.get("KUBERNETES_SERVICE_HOST"))


def uses_standalone(conf: MultusConf) -> bool:
    """Standalone mode: no Kubernetes, and a config that is more than static delegates."""
    if has_kubernetes(conf):
        return False
    return bool(conf.cluster_network or conf.nad_dir or conf.pod_dir or conf.status_dir)


@contextmanager
def thin_deps(conf: MultusConf, command: str = "ADD", base: Deps | None = None) -> Iterator[Deps]:
    """``base`` with API-backed sources when Kubernetes is configured; ``base`` alone otherwise
    (only static delegates and files then). lightkube is imported only when needed, and its
    connections are closed on exit.

    A kubeconfig that cannot be used fails every verb but DEL: DEL must succeed for a pod whose
    node credentials are already gone, and it has the delegate and libcni caches to go by
    (Go Multus fails that DEL).
    """
    start = base if base is not None else Deps()
    if not has_kubernetes(conf):
        yield start
        return
    from pymultus.k8s.client import KubeApi, load_client  # noqa: PLC0415 - start-up cost
    from pymultus.k8s.dra_api import ApiDra  # noqa: PLC0415
    from pymultus.k8s.sources import ApiEvents, ApiNads, ApiPods, ApiStatus  # noqa: PLC0415

    try:
        client = load_client(conf.kubeconfig or None)
    except CniError:
        if command != "DEL":
            raise
        client = None
    if client is None:
        yield start
        return
    api = KubeApi(client)
    try:
        yield replace(
            start,
            pods=ApiPods(api),
            nads=ApiNads(api),
            status=ApiStatus(api),
            events=ApiEvents(api),
            dra=ApiDra(api),
        )
    finally:
        client.close()


def version_info() -> bytes:
    return gojson.marshal({"cniVersion": CURRENT, "supportedVersions": list(ALL_VERSIONS)})


def handle(environ: Mapping[str, str], stdin: bytes, *, base: Deps | None = None) -> bytes:
    """Run one CNI call; returns what to print (may be empty)."""
    cmd = parse_plugin_env(environ, stdin)
    if cmd.command == "VERSION":
        return version_info()
    conf = parse_multus_conf(stdin)
    require_known(conf.cni_version)
    result = _run(Request.build(cmd, conf), base if base is not None else Deps())
    return _print(result, conf) if result is not None else b""


def _run(req: Request, base: Deps) -> AnyResult | None:
    conf = req.conf
    if uses_standalone(conf):
        from pymultus.core.standalone import run_standalone  # noqa: PLC0415 - needs PyYAML

        dirs = (
            ("nad_dir", conf.nad_dir),
            ("pod_dir", conf.pod_dir),
            ("state_dir", conf.status_dir),
        )
        return run_standalone(req, base=base, **{key: value for key, value in dirs if value})
    from pymultus.core.dispatch import run  # noqa: PLC0415 - not needed for VERSION

    with thin_deps(conf, req.cmd.command, base) as deps:
        return run(req, deps)


def _print(result: AnyResult, conf: MultusConf) -> bytes:
    """The result in the config's cniVersion, which is what the runtime asked for (Go prints
    the cluster network's result in that delegate's own version, §11 item 14)."""
    if conf.cni_version:
        result = convert(result, conf.cni_version)
    return encode_result(result, indent=True)


def _parsed(stdin: bytes) -> MultusConf | None:
    try:
        return parse_multus_conf(stdin)
    except CniError:
        return None


def _config_version(stdin: bytes) -> str:
    conf = _parsed(stdin)
    return conf.cni_version if conf is not None else ""


def _pod_of(cni_args: str) -> str:
    """``ns/name`` from CNI_ARGS for log lines; "" when it cannot be read."""
    found = dict(pair.partition("=")[::2] for pair in cni_args.split(";"))
    ns, name = found.get("K8S_POD_NAMESPACE", ""), found.get("K8S_POD_NAME", "")
    return f"{ns}/{name}" if name else ""


def _setup_logging(stdin: bytes) -> None:
    """Logging as the config says; a config that does not parse gets the defaults (its error
    is reported by the call itself)."""
    conf = _parsed(stdin)
    logsetup.apply(
        conf.log if conf is not None else LogSettings(), formatter=logsetup.ContextFormatter()
    )


def main(base: Deps | None = None) -> None:
    command = os.environ.get("CNI_COMMAND", "")
    if not command and sys.argv[1:2] in (["-v"], ["-version"], ["--version"]):
        print(f"multus: pymultus {__version__}")
        return
    if not command:
        print(f"{ABOUT}\nCNI protocol versions supported: {', '.join(ALL_VERSIONS)}")
        return
    stdin = sys.stdin.buffer.read()
    _setup_logging(stdin)
    pod = _pod_of(os.environ.get("CNI_ARGS", ""))
    try:
        with logsetup.fields(
            command=command, containerID=os.environ.get("CNI_CONTAINERID", ""), pod=pod
        ):
            out = handle(os.environ, stdin, base=base)
    except CniError as err:
        log.error("%s failed: %s", command, err)
        sys.stdout.buffer.write(err.to_json(_config_version(stdin)))
        sys.exit(1)
    except Exception as exc:  # the one boundary: a bug must still answer in CNI's shape
        log.critical("%s failed with an internal error", command, exc_info=True)
        bug = InternalError(f"internal error: {type(exc).__name__}: {exc}")
        sys.stdout.buffer.write(bug.to_json(_config_version(stdin)))
        sys.exit(1)
    sys.stdout.buffer.write(out)
