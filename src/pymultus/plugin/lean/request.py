"""The lean path's reading of a call: the runtime's variables and the Multus config.

Only the shapes the lean path runs are accepted; everything else is ``Unhandled`` and the
full path reads it (``cni.env``, ``config.multus``), with its checks and its error messages.
A config key the lean path does not know is ``Unhandled`` too: unknown keys may be features.
"""

from __future__ import annotations

from pymultus.plugin.lean import js
from pymultus.plugin.lean import oslite as os  # posix alone: see oslite
from pymultus.plugin.lean.errors import Unhandled
from pymultus.plugin.lean.model import Call

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: ``cni.version.ALL_VERSIONS`` the lean path runs (a test pins them against the full path's).
VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
_STRINGS: tuple[str, ...] = ("cniVersion", "name", "type", "kubeconfig", "clusterNetwork")
_STRINGS += ("cniDir", "confDir", "binDir", "multusNamespace", "readinessindicatorfile", "logLevel")
_STRINGS += ("globalNamespaces",)
_BOOLS = ("namespaceIsolation", "retryDeleteOnError", "logToStderr")
_OTHERS = ("systemNamespaces", "capabilities", "runtimeConfig", "delegates")
_KNOWN = frozenset((*_STRINGS, *_BOOLS, *_OTHERS))
#: ``runtimeConfig`` keys the full path reads, with the JSON type each must have.
_RUNTIME_SCALARS = {
    "mac": str,
    "infinibandGUID": str,
    "deviceID": str,
    "CNIDeviceInfoFile": str,
}
_PORT_MAPPING: dict[str, type] = {
    "hostPort": int,
    "containerPort": int,
    "protocol": str,
    "hostIP": str,
}
_BANDWIDTH: dict[str, type] = {
    "ingressRate": int,
    "ingressBurst": int,
    "egressRate": int,
    "egressBurst": int,
}
_RUNTIME_KEYS = frozenset(
    k.casefold() for k in (*_RUNTIME_SCALARS, "portMappings", "bandwidth", "ips")
)
#: Quiet log levels: at these the full path writes no log line on a successful call.
_QUIET = ("", "panic")
MAX_CONFIG_BYTES = 4 << 20  # cni.limits.MAX_CONFIG_BYTES
#: ``core.deps.Deps.plugin_timeout``: the thin plugin's delegate timeout.
PLUGIN_TIMEOUT = 60.0


def valid_name(value: str) -> bool:
    """libcni's ``[a-zA-Z0-9][a-zA-Z0-9_.-]*`` (container ids and network names)."""
    return bool(value) and value[0] not in "_.-" and all(c in _NAME_CHARS for c in value)


def valid_ifname(value: str) -> bool:
    """libcni's ``ValidateInterfaceName`` for ASCII names."""
    if not value or not value.isascii() or len(value) > 15 or value in (".", ".."):
        return False
    return not any(c in "/:" or c.isspace() for c in value)


class Conf:
    """The keys of a Multus config the lean path runs, defaults as ``config.multus``'s."""

    __slots__ = (
        "cluster_network",
        "cni_dir",
        "cni_version",
        "delegates",
        "isolation",
        "kubeconfig",
        "raw",
        "readiness",
        "retry_delete",
        "runtime_config",
    )

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw
        self.cni_version: str = raw.get("cniVersion", "")
        self.kubeconfig: str = raw.get("kubeconfig", "")
        self.cluster_network: str = raw.get("clusterNetwork", "")
        self.cni_dir: str = raw.get("cniDir", "") or "/var/lib/cni/multus"
        self.readiness: str = raw.get("readinessindicatorfile", "")
        self.isolation: bool = raw.get("namespaceIsolation", False)
        self.retry_delete: bool = raw.get("retryDeleteOnError", False)
        self.runtime_config: dict[str, Any] | None = raw.get("runtimeConfig")
        #: ``delegates`` (each a CNI config object), when there is no clusterNetwork.
        self.delegates: list[dict[str, Any]] = raw.get("delegates") or []

    @property
    def bin_path(self) -> str:
        return self.raw.get("binDir", "") or "/opt/cni/bin"


def read_call(environ: dict[str, str], stdin: bytes) -> tuple[Call, Conf]:
    """The call and its config, or ``Unhandled``."""
    call = Call(environ)
    _check_call(call, environ)
    return call, read_conf(stdin)


def _check_call(call: Call, environ: dict[str, str]) -> None:
    if call.command not in ("ADD", "DEL"):
        raise Unhandled(f"verb {call.command}")
    needed = [call.container_id, call.ifname, environ.get("CNI_PATH", "")]
    if call.command == "ADD":
        needed.append(call.netns)
    if not all(needed) or environ.get("CNI_NETNS_OVERRIDE"):
        raise Unhandled("CNI variables the full path reports on")
    if not valid_name(call.container_id) or not valid_ifname(call.ifname):
        raise Unhandled("a container id or interface name the full path reports on")
    if not (call.pod_namespace and call.pod_name):
        raise Unhandled("no pod in CNI_ARGS")


def read_conf(stdin: bytes) -> Conf:
    if len(stdin) > MAX_CONFIG_BYTES:
        raise Unhandled("a config over the size limit")
    raw = js.loads_object(stdin)
    if not _KNOWN.issuperset(raw):
        raise Unhandled(f"config keys {sorted(set(raw) - _KNOWN)}")
    if not all(isinstance(raw.get(k, ""), str) for k in _STRINGS):
        raise Unhandled("a config string of another type")
    if not all(isinstance(raw.get(k, False), bool) for k in _BOOLS):
        raise Unhandled("a config boolean of another type")
    _check_values(raw)
    return Conf(raw)


def _check_values(raw: dict[str, Any]) -> None:
    if raw.get("type") != "multus" or not valid_name(raw.get("name", "")):
        raise Unhandled("not a multus config with a valid name")
    if raw.get("cniVersion") not in VERSIONS:
        raise Unhandled("a cniVersion the lean path does not print")
    if raw.get("logLevel", "").lower() not in _QUIET:
        raise Unhandled("logging on: the full path writes the log lines")
    if not raw.get("kubeconfig") and not os.environ.get("KUBERNETES_SERVICE_HOST"):
        raise Unhandled("no Kubernetes")
    _check_networks(raw)
    systems = raw.get("systemNamespaces", [])
    if not isinstance(systems, list) or not all(isinstance(s, str) for s in systems):
        raise Unhandled("systemNamespaces of another type")
    caps = raw.get("capabilities", {})
    if not isinstance(caps, dict) or not all(isinstance(v, bool) for v in caps.values()):
        raise Unhandled("capabilities of another type")
    if raw.get("logFile"):
        raise Unhandled("a log file")
    _check_runtime_config(raw.get("runtimeConfig", {}))


def _check_networks(raw: dict[str, Any]) -> None:
    """A ``clusterNetwork`` file path, or (no clusterNetwork) static ``delegates``."""
    cluster, delegates = raw.get("clusterNetwork", ""), raw.get("delegates")
    if cluster:
        if not cluster.startswith("/") or delegates is not None:
            raise Unhandled("clusterNetwork is not a file path, or comes with delegates")
        return
    if not isinstance(delegates, list) or not delegates:
        raise Unhandled("neither clusterNetwork nor delegates")
    if not all(isinstance(d, dict) for d in delegates):
        raise Unhandled("a delegate that is not an object")


def _check_runtime_config(rc: Any) -> None:
    """``runtimeConfig`` as the full path reads it (``config.multus._runtime_config``): its
    known keys spelled exactly and of Go's types; other keys are passed on as they are."""
    if not isinstance(rc, dict):
        raise Unhandled("runtimeConfig that is not an object")
    for key, value in rc.items():
        if key.casefold() in _RUNTIME_KEYS and key not in (
            *_RUNTIME_SCALARS,
            "portMappings",
            "bandwidth",
            "ips",
        ):
            raise Unhandled(f"runtimeConfig key {key} spelled another way")
        if key in _RUNTIME_SCALARS and type(value) is not _RUNTIME_SCALARS[key]:
            raise Unhandled(f"runtimeConfig.{key} of another type")
    if "ips" in rc and not _typed_list(rc["ips"], str):
        raise Unhandled("runtimeConfig.ips of another type")
    if "bandwidth" in rc and not _typed_object(rc["bandwidth"], _BANDWIDTH):
        raise Unhandled("runtimeConfig.bandwidth the full path judges")
    mappings = rc.get("portMappings", [])
    if not isinstance(mappings, list) or not all(_typed_object(m, _PORT_MAPPING) for m in mappings):
        raise Unhandled("runtimeConfig.portMappings the full path judges")


def _typed_list(value: Any, kind: type) -> bool:
    return isinstance(value, list) and all(type(v) is kind for v in value)


def _typed_object(value: Any, fields: dict[str, type]) -> bool:
    """An object whose known fields (spelled exactly, no other spelling) have their types."""
    if not isinstance(value, dict):
        return False
    folded = {k.casefold(): k for k in fields}
    for key, item in value.items():
        exact = folded.get(key.casefold())
        if exact is not None and (key != exact or type(item) is not fields[exact]):
            return False
    return True


def search_path(call: Call, conf: Conf) -> list[str]:
    """``core.delegates.cni_for``: ``binDir`` first, then CNI_PATH (row 46)."""
    first = conf.bin_path
    return [first, *[p for p in call.path.split(":") if p and p != first]]
