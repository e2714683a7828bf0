"""One CNI call of the thin ``multus`` plugin (every verb but VERSION, which ``plugin.main``
answers itself): one process per call, API server read directly.

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

The API client is ``k8s.lite`` (standard library, one kept-alive connection), built lazily: a
DEL that its caches can serve opens no connection and imports neither TLS nor HTTP.
A kubeconfig whose user needs ``exec`` or ``auth-provider`` falls back to lightkube.

Events never lengthen the call: they are kept while it runs, and after the answer is written
a child process sends them and logs a failure with the count (``send_events``). The runtime
waits for the plugin to exit and for its stdout to close; the child closes stdin and stdout
and keeps only stderr (containerd and CRI-O pass their own, a file), so the runtime has its
answer as soon as the plugin itself exits.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import msgspec

from pymultus.cni.convert import AnyResult, convert, encode_result
from pymultus.cni.env import parse_plugin_env
from pymultus.cni.errors import CniError, InternalError
from pymultus.cni.version import require_known
from pymultus.config import logsetup
from pymultus.config.logging import LogSettings
from pymultus.config.multus import MultusConf, parse_multus_conf
from pymultus.core.deps import Deps
from pymultus.core.request import Request
from pymultus.k8s.calls import ApiCalls
from pymultus.k8s.dra import DraApi
from pymultus.plugin.main import version_info

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
def thin_deps(
    conf: MultusConf,
    command: str = "ADD",
    base: Deps | None = None,
    apis: list[ApiCalls] | None = None,
) -> Iterator[Deps]:
    """``base`` with API-backed sources when Kubernetes is configured; ``base`` alone otherwise
    (only static delegates and files then). The client is appended to ``apis`` (for the events
    sent after the answer) and its connection is closed on exit.

    A kubeconfig that cannot be used fails every verb but DEL: DEL must succeed for a pod whose
    node credentials are already gone, and it has the delegate and libcni caches to go by
    (Go Multus fails that DEL).
    """
    start = base if base is not None else Deps()
    api = _api(conf, command) if has_kubernetes(conf) else None
    if api is None:
        yield start
        return
    if apis is not None:
        apis.append(api)
    from pymultus.k8s.sources import ApiEvents, ApiNads, ApiPods, ApiStatus  # noqa: PLC0415

    try:
        yield msgspec.structs.replace(
            start,
            pods=ApiPods(api),
            nads=ApiNads(api),
            status=ApiStatus(api),
            events=ApiEvents(api),
            dra=_dra(api),
        )
    finally:
        api.close()


def _dra(api: ApiCalls) -> DraApi:
    """ResourceClaims and ResourceSlices through the same client (read only for a pod with
    claims and a NAD with a resourceName)."""
    from pymultus.k8s.lite import LiteApi  # noqa: PLC0415 - already imported by _api

    if isinstance(api, LiteApi):
        from pymultus.k8s.dra_lite import LiteDra  # noqa: PLC0415

        return LiteDra(api)
    from pymultus.k8s.client import KubeApi  # noqa: PLC0415 - exec credentials only
    from pymultus.k8s.dra_api import ApiDra  # noqa: PLC0415

    assert isinstance(api, KubeApi)
    return ApiDra(api)


def _api(conf: MultusConf, command: str) -> ApiCalls | None:
    """The API client of the config: ``k8s.lite``'s, else (exec or auth-provider credentials)
    lightkube's; None for a DEL whose kubeconfig cannot be used. Reading the kubeconfig opens
    no connection: that waits for the first request."""
    from pymultus.k8s.lite import LiteApi  # noqa: PLC0415 - only with Kubernetes
    from pymultus.k8s.lite_conf import load_endpoint  # noqa: PLC0415

    try:
        endpoint = load_endpoint(conf.kubeconfig or None, cache_dir=conf.cni_dir)
        if endpoint is not None:
            return LiteApi(endpoint)
        from pymultus.k8s.client import KubeApi, load_client  # noqa: PLC0415 - exec credentials

        client = load_client(conf.kubeconfig or None)
    except LookupError:
        return None
    except CniError:
        if command != "DEL":
            raise
        return None
    return KubeApi(client) if client is not None else None


def handle(
    environ: Mapping[str, str],
    stdin: bytes,
    *,
    base: Deps | None = None,
    apis: list[ApiCalls] | None = None,
) -> bytes:
    """Run one CNI call; returns what to print (may be empty)."""
    cmd = parse_plugin_env(environ, stdin)
    if cmd.command == "VERSION":
        return version_info()
    conf = parse_multus_conf(stdin)
    require_known(conf.cni_version)
    result = _run(Request.build(cmd, conf), base if base is not None else Deps(), apis)
    return _print(result, conf) if result is not None else b""


def _run(req: Request, base: Deps, apis: list[ApiCalls] | None) -> AnyResult | None:
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

    with thin_deps(conf, req.cmd.command, base, apis) as deps:
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


def run_call(command: str, base: Deps | None = None, stdin: bytes | None = None) -> None:
    """Read the config (``stdin``, else the process's), run ``command``, print the answer (or
    the CNI error and exit 1); then send the call's events from a child process."""
    if stdin is None:
        stdin = sys.stdin.buffer.read()
    _setup_logging(stdin)
    pod = _pod_of(os.environ.get("CNI_ARGS", ""))
    apis: list[ApiCalls] = []
    with logsetup.fields(
        command=command, containerID=os.environ.get("CNI_CONTAINERID", ""), pod=pod
    ):
        try:
            out = handle(os.environ, stdin, base=base, apis=apis)
        except CniError as err:
            log.error("%s failed: %s", command, err)
            _answer(err.to_json(_config_version(stdin)), apis)
            sys.exit(1)
        except Exception as exc:  # the one boundary: a bug must still answer in CNI's shape
            log.critical("%s failed with an internal error", command, exc_info=True)
            bug = InternalError(f"internal error: {type(exc).__name__}: {exc}")
            _answer(bug.to_json(_config_version(stdin)), apis)
            sys.exit(1)
        _answer(out, apis)


def _answer(out: bytes, apis: list[ApiCalls]) -> None:
    sys.stdout.buffer.write(out)
    sys.stdout.flush()
    pending = [api for api in apis if api.events_pending]
    if pending:
        send_detached(pending)


def send_detached(apis: list[ApiCalls]) -> None:
    """Send the kept events from a child process that the runtime does not wait for: it holds
    neither stdin nor stdout (only stderr, for its log lines). Without ``fork`` they are sent
    here and now."""
    try:
        pid = os.fork()
    except OSError:
        _send(apis)
        return
    if pid:
        return
    try:
        with contextlib.suppress(OSError):  # already a session leader: stays in the group
            os.setsid()
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(null, 1)
        _send(apis)
    finally:
        logging.shutdown()
        os._exit(0)


def _send(apis: list[ApiCalls]) -> None:
    for api in apis:
        api.send_events()
