"""The Multus network config (stdin of ``type: multus``; in thick mode the request config after
the daemon overlay), read the way Go Multus's ``LoadNetConf`` reads it.

Compatibility rules, all from Go's ``encoding/json`` and ``pkg/types/conf.go``:

- Keys keep Go Multus's spellings (``readinessindicatorfile``, ``globalNamespaces`` as one
  comma string, ...) and, like Go, are matched ignoring case (``readinessIndicatorFile`` works).
- Unknown keys are ignored (``cniConf``, ``daemonSocketDir``, ``defaultnetworkwaitseconds``).
- JSON null keeps a scalar's default but empties a list: ``"systemNamespaces": null`` means no
  system namespaces, as in Go.
- Static ``delegates`` are kept as the bytes Go hands to the delegate: each element
  re-marshalled from ``map[string]interface{}`` (keys sorted, compact, numbers through float64).
- ``prevResult`` is kept as its exact bytes; the core parses it in the config's ``cniVersion``.

Deliberate differences, all for configs Go cannot use anyway: an empty ``confDir``, ``cniDir``,
``binDir`` or ``multusNamespace`` means the default (Go would use "" and fail later), and type
errors are ``InvalidConfigError`` (code 7) naming the key, where Go answers code 999.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from pymultus.cni.env import validate_network_name
from pymultus.cni.errors import DecodeError, InvalidConfigError
from pymultus.cni.netconf import decode_object, go_field, remarshal
from pymultus.config.logging import LogSettings, parse_log_settings, typed_field

DEFAULT_CONF_DIR = "/etc/cni/multus/net.d"  # NAD-less configs and CNI names are looked up here
DEFAULT_CNI_DIR = "/var/lib/cni/multus"  # delegate cache files and libcni's results/
DEFAULT_BIN_DIR = "/opt/cni/bin"  # searched before CNI_PATH
DEFAULT_MULTUS_NAMESPACE = "kube-system"  # where clusterNetwork/defaultNetworks NADs live
DEFAULT_SYSTEM_NAMESPACES: tuple[str, ...] = ("kube-system",)  # pods here get no defaultNetworks
DEFAULT_GLOBAL_NAMESPACES: tuple[str, ...] = ("default",)  # isolation exempts these NADs


class PortMapping(msgspec.Struct, frozen=True, kw_only=True):
    """One ``runtimeConfig.portMappings`` entry (``hostPort`` or containerd's ``HostPort``)."""

    host_port: int = 0
    container_port: int = 0
    protocol: str = ""
    host_ip: str = ""

    def to_wire(self) -> dict[str, Any]:
        """Go Multus's ``PortMapEntry`` JSON: protocol and hostIP omitted when empty."""
        wire: dict[str, Any] = {"hostPort": self.host_port, "containerPort": self.container_port}
        if self.protocol:
            wire["protocol"] = self.protocol
        if self.host_ip:
            wire["hostIP"] = self.host_ip
        return wire


class Bandwidth(msgspec.Struct, frozen=True, kw_only=True):
    """``runtimeConfig.bandwidth``: rates in bits per second, bursts in bits."""

    ingress_rate: int = 0
    ingress_burst: int = 0
    egress_rate: int = 0
    egress_burst: int = 0

    def to_wire(self) -> dict[str, Any]:
        """Go Multus's ``BandwidthEntry`` JSON: all four keys, always."""
        return {
            "ingressRate": self.ingress_rate,
            "ingressBurst": self.ingress_burst,
            "egressRate": self.egress_rate,
            "egressBurst": self.egress_burst,
        }


class RuntimeConfig(msgspec.Struct, frozen=True, kw_only=True):
    """The runtime's ``runtimeConfig``: the keys Multus understands, plus ``raw`` (the whole
    object as given, so other capabilities are not lost)."""

    port_mappings: tuple[PortMapping, ...] = ()
    bandwidth: Bandwidth | None = None
    ips: tuple[str, ...] = ()
    mac: str = ""
    infiniband_guid: str = ""
    device_id: str = ""
    cni_device_info_file: str = ""
    raw: dict[str, Any] = msgspec.field(default_factory=dict)


class MultusConf(msgspec.Struct, frozen=True, kw_only=True):
    """Every key of the Multus config (behaviour §3.1), defaults applied.

    ``delegates`` is only used when ``cluster_network`` is empty (Go ignores it otherwise);
    the first delegate is then the master.
    """

    raw: bytes
    name: str
    cni_version: str = ""
    type: str = ""
    capabilities: dict[str, bool] = msgspec.field(default_factory=dict)
    runtime_config: RuntimeConfig | None = None
    prev_result: bytes | None = None
    conf_dir: str = DEFAULT_CONF_DIR
    cni_dir: str = DEFAULT_CNI_DIR
    bin_dir: str = DEFAULT_BIN_DIR
    delegates: tuple[bytes, ...] = ()
    cluster_network: str = ""
    default_networks: tuple[str, ...] = ()
    kubeconfig: str = ""
    log: LogSettings = LogSettings()
    readiness_indicator_file: str = ""
    namespace_isolation: bool = False
    raw_global_namespaces: str = ""
    auxiliary_cni_chain_name: str = ""
    system_namespaces: tuple[str, ...] = DEFAULT_SYSTEM_NAMESPACES
    multus_namespace: str = DEFAULT_MULTUS_NAMESPACE
    retry_delete_on_error: bool = False
    # pymultus's standalone mode (no Kubernetes; the daemon config has the same keys): where
    # NAD manifests, pod files and network-status files live ("" = /etc/pymultus/nads,
    # /etc/pymultus/pods, /var/lib/pymultus/status).
    nad_dir: str = ""
    pod_dir: str = ""
    status_dir: str = ""

    def global_namespaces(self) -> tuple[str, ...]:
        """Namespaces whose NADs any pod may use under isolation. Setting the key *replaces*
        the implicit ``default`` (Go quirk); entries are trimmed, empty ones kept as in Go."""
        if not self.raw_global_namespaces:
            return DEFAULT_GLOBAL_NAMESPACES
        return tuple(item.strip() for item in self.raw_global_namespaces.split(","))


def parse_multus_conf(data: bytes) -> MultusConf:
    """Parse and validate a Multus config.

    Raises ``DecodeError`` (code 6) when ``data`` is not a JSON object and
    ``InvalidConfigError`` (code 7, ``field`` set) for a missing or invalid ``name``, a key of
    the wrong JSON type, or a config with neither ``delegates`` nor ``clusterNetwork``.
    """
    obj = decode_object(bytes(data), "multus config")
    name = typed_field(obj, "name", str, "")
    validate_network_name(name)
    _check_objects(obj, ("ipam", "dns"))
    delegates = _delegates(obj)
    cluster_network = typed_field(obj, "clusterNetwork", str, "")
    if not delegates and not cluster_network:
        raise InvalidConfigError(
            "at least one delegate/clusterNetwork must be specified: "
            "set `clusterNetwork` or a non-empty `delegates` list",
            field="clusterNetwork",
        )
    return MultusConf(
        raw=bytes(data),
        name=name,
        cni_version=typed_field(obj, "cniVersion", str, ""),
        type=typed_field(obj, "type", str, ""),
        capabilities=bool_map_field(obj, "capabilities"),
        runtime_config=_runtime_config(obj),
        prev_result=_prev_result(data, obj),
        conf_dir=typed_field(obj, "confDir", str, "") or DEFAULT_CONF_DIR,
        cni_dir=typed_field(obj, "cniDir", str, "") or DEFAULT_CNI_DIR,
        bin_dir=typed_field(obj, "binDir", str, "") or DEFAULT_BIN_DIR,
        delegates=delegates,
        cluster_network=cluster_network,
        default_networks=str_list_field(obj, "defaultNetworks", ()),
        kubeconfig=typed_field(obj, "kubeconfig", str, ""),
        log=parse_log_settings(obj, default_to_stderr=True),
        readiness_indicator_file=typed_field(obj, "readinessindicatorfile", str, ""),
        namespace_isolation=typed_field(obj, "namespaceIsolation", bool, False),
        raw_global_namespaces=typed_field(obj, "globalNamespaces", str, ""),
        auxiliary_cni_chain_name=typed_field(obj, "auxiliaryCNIChainName", str, ""),
        system_namespaces=str_list_field(obj, "systemNamespaces", DEFAULT_SYSTEM_NAMESPACES),
        multus_namespace=typed_field(obj, "multusNamespace", str, "") or DEFAULT_MULTUS_NAMESPACE,
        retry_delete_on_error=typed_field(obj, "retryDeleteOnError", bool, False),
        nad_dir=typed_field(obj, "nadDir", str, ""),
        pod_dir=typed_field(obj, "podDir", str, ""),
        status_dir=typed_field(obj, "statusDir", str, ""),
    )


# ---------------------------------------------------------------- typed lookups (Go rules)


def str_list_field(
    obj: Mapping[str, Any], key: str, default: tuple[str, ...], prefix: str = ""
) -> tuple[str, ...]:
    """A ``[]string`` field: absent keeps ``default``, null empties it (Go sets nil)."""
    found, value = go_field(obj, key)
    if not found:
        return default
    if value is None:
        return ()
    where = f"{prefix}{key}"
    if not isinstance(value, list):
        raise InvalidConfigError(f"{where} must be a list of strings, got {value!r}", field=where)
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise InvalidConfigError(
                f"{where}[{index}] must be a string, got {item!r}", field=f"{where}[{index}]"
            )
    return tuple(value)


def bool_map_field(obj: Mapping[str, Any], key: str, prefix: str = "") -> dict[str, bool]:
    """A ``map[string]bool`` field such as ``capabilities``; absent or null is empty."""
    found, value = go_field(obj, key)
    if not found or value is None:
        return {}
    where = f"{prefix}{key}"
    if not isinstance(value, dict):
        raise InvalidConfigError(f"{where} must be an object, got {value!r}", field=where)
    for name, flag in value.items():
        if not isinstance(flag, bool):
            raise InvalidConfigError(
                f"{where}.{name} must be true or false, got {flag!r}", field=f"{where}.{name}"
            )
    return dict(value)


def object_field(obj: Mapping[str, Any], key: str, prefix: str = "") -> dict[str, Any] | None:
    """A struct or map field: None when absent or null, else it must be a JSON object."""
    found, value = go_field(obj, key)
    if not found or value is None:
        return None
    if not isinstance(value, dict):
        where = f"{prefix}{key}"
        raise InvalidConfigError(f"{where} must be an object, got {value!r}", field=where)
    return value


def _check_objects(obj: Mapping[str, Any], keys: tuple[str, ...]) -> None:
    """Go unmarshals these into structs, so a non-object fails the whole config."""
    for key in keys:
        object_field(obj, key)


# ---------------------------------------------------------------- composite keys


def _delegates(obj: Mapping[str, Any]) -> tuple[bytes, ...]:
    """``delegates``: each element as the bytes Go passes on (``json.Marshal`` of the map)."""
    found, value = go_field(obj, "delegates")
    if not found or value is None:
        return ()
    if not isinstance(value, list):
        raise InvalidConfigError(
            f"delegates must be a list of CNI configs, got {value!r}", field="delegates"
        )
    encoded = []
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise InvalidConfigError(
                f"delegates[{index}] must be a CNI config object, got {item!r}",
                field=f"delegates[{index}]",
            )
        encoded.append(remarshal(item))
    return tuple(encoded)


def _prev_result(data: bytes, obj: Mapping[str, Any]) -> bytes | None:
    """The exact bytes of ``prevResult`` (an object, or absent/null)."""
    if object_field(obj, "prevResult") is None:
        return None
    try:
        pieces = msgspec.json.decode(data, type=dict[str, msgspec.Raw])
    except (
        msgspec.DecodeError,
        msgspec.ValidationError,
        UnicodeDecodeError,
    ) as exc:  # pragma: no cover
        raise DecodeError(f"error parsing multus config: {exc}") from exc
    found, raw = go_field(pieces, "prevResult")
    return bytes(raw) if found else None


_RC = "runtimeConfig."


def _runtime_config(obj: Mapping[str, Any]) -> RuntimeConfig | None:
    rc = object_field(obj, "runtimeConfig")
    if rc is None:
        return None
    return RuntimeConfig(
        port_mappings=_port_mappings(rc),
        bandwidth=_bandwidth(rc),
        ips=str_list_field(rc, "ips", (), _RC),
        mac=typed_field(rc, "mac", str, "", _RC),
        infiniband_guid=typed_field(rc, "infinibandGUID", str, "", _RC),
        device_id=typed_field(rc, "deviceID", str, "", _RC),
        cni_device_info_file=typed_field(rc, "CNIDeviceInfoFile", str, "", _RC),
        raw=dict(rc),
    )


def _port_mappings(rc: Mapping[str, Any]) -> tuple[PortMapping, ...]:
    found, value = go_field(rc, "portMappings")
    if not found or value is None:
        return ()
    where = f"{_RC}portMappings"
    if not isinstance(value, list):
        raise InvalidConfigError(f"{where} must be a list, got {value!r}", field=where)
    mappings = []
    for index, item in enumerate(value):
        prefix = f"{where}[{index}]."
        if not isinstance(item, dict):
            raise InvalidConfigError(
                f"{where}[{index}] must be an object, got {item!r}", field=f"{where}[{index}]"
            )
        mappings.append(
            PortMapping(
                host_port=typed_field(item, "hostPort", int, 0, prefix),
                container_port=typed_field(item, "containerPort", int, 0, prefix),
                protocol=typed_field(item, "protocol", str, "", prefix),
                host_ip=typed_field(item, "hostIP", str, "", prefix),
            )
        )
    return tuple(mappings)


def _bandwidth(rc: Mapping[str, Any]) -> Bandwidth | None:
    value = object_field(rc, "bandwidth", _RC)
    if value is None:
        return None
    prefix = f"{_RC}bandwidth."
    return Bandwidth(
        ingress_rate=typed_field(value, "ingressRate", int, 0, prefix),
        ingress_burst=typed_field(value, "ingressBurst", int, 0, prefix),
        egress_rate=typed_field(value, "egressRate", int, 0, prefix),
        egress_burst=typed_field(value, "egressBurst", int, 0, prefix),
    )
