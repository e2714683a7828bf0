"""The thick daemon's config file (behaviour §3.3) and the per-request overlay (row 57).

Go Multus reads one JSON file (default ``/etc/cni/net.d/multus.d/daemon-config.json``, from
the ConfigMap ``multus-daemon-config``) for three things: the daemon's own settings (socket,
chroot, metrics, ...), the generated ``00-multus.conf`` in auto mode, and an overlay merged
over **every** incoming CNI config, daemon keys winning. So any Multus key of §3.1
(``confDir``, ``namespaceIsolation``, ``clusterNetwork``, ...) can be set centrally here; those
keys are type-checked when a request config is parsed, not here.

As in ``config.multus``, an empty string for a directory or for ``multusConfigFile`` means the
default (Go would use "" and fail later).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import msgspec

from pymultus.cni.errors import InvalidConfigError
from pymultus.cni.netconf import decode_object, go_field, remarshal
from pymultus.config.logging import LogSettings, parse_log_settings, typed_field
from pymultus.config.multus import bool_map_field, object_field

DEFAULT_CONFIG_PATH = "/etc/cni/net.d/multus.d/daemon-config.json"
DEFAULT_SOCKET_DIR = "/run/multus/"  # the shim's default daemonSocketDir is the same
DEFAULT_CNI_CONFIG_DIR = "/etc/cni/net.d"  # where 00-multus.conf is written
DEFAULT_MULTUS_CONFIG_FILE = "auto"  # generate 00-multus.conf from the primary config
DEFAULT_CERT_DURATION_S = 600.0  # 10m: per-node client certificates are short-lived, rotated
READINESS_KEY = "readinessindicatorfile"
DEFAULT_DELEGATE_TIMEOUT_S = 60


class PerNodeCertificate(msgspec.Struct, frozen=True, kw_only=True):
    """``perNodeCertificate``: a client certificate per node through a CSR."""

    enabled: bool = False
    bootstrap_kubeconfig: str = ""
    cert_dir: str = ""
    cert_duration_s: float = DEFAULT_CERT_DURATION_S


class DaemonConf(msgspec.Struct, frozen=True, kw_only=True):
    """The daemon config with Go's defaults. ``raw_map`` is the whole file, what ``overlay``
    merges into each request; the generator copies its shim keys from here too."""

    raw: bytes
    raw_map: dict[str, Any]
    socket_dir: str = DEFAULT_SOCKET_DIR
    chroot_dir: str = ""
    log: LogSettings = LogSettings(to_stderr=False)
    metrics_port: int | None = None
    enable_pprof: bool = False
    connection_limit: int | None = None
    per_node_certificate: PerNodeCertificate | None = None
    multus_config_file: str = DEFAULT_MULTUS_CONFIG_FILE
    cni_config_dir: str = DEFAULT_CNI_CONFIG_DIR
    multus_autoconfig_dir: str = ""
    multus_master_cni: str = ""
    cni_version: str = ""
    force_cni_version: bool = False
    override_network_name: bool = False
    readiness_indicator_file: str = ""
    daemon_socket_dir: str = ""
    bin_dir: str = ""
    cni_dir: str = ""
    capabilities: dict[str, bool] = msgspec.field(default_factory=dict)
    namespace_isolation: bool = False
    global_namespaces: str = ""
    auxiliary_cni_chain_name: str = ""
    cluster_network: str = ""
    type: str = "multus-shim"
    # pymultus's own keys. Standalone mode (no Kubernetes): where NAD manifests, pod files
    # and network-status files live ("" = /etc/pymultus/nads, /etc/pymultus/pods,
    # /var/lib/pymultus/status). ``maxDelegateProcesses``: delegate plugins running at once
    # (None = 2 per CPU, at least 8), the cap that keeps a node-reboot burst from exhausting
    # the daemon's memory (Go Multus issues #1346, #1416). ``delegateTimeoutSeconds``: how
    # long one delegate plugin run may take before it is killed and the call fails (Go Multus
    # waits forever; 60 s is well under the kubelet's 4-minute runtime-request timeout).
    nad_dir: str = ""
    pod_dir: str = ""
    status_dir: str = ""
    max_delegate_processes: int | None = None
    delegate_timeout_s: int = DEFAULT_DELEGATE_TIMEOUT_S
    #: ``hotPlug``: the daemon attaches and detaches annotation networks of running pods when
    #: their selection changes (``daemon.hotplug``). Off by default, as Go Multus.
    hot_plug: bool = False

    @property
    def auto(self) -> bool:
        """Auto mode: the daemon generates ``00-multus.conf`` and watches the readiness file."""
        return self.multus_config_file == DEFAULT_MULTUS_CONFIG_FILE


def parse_daemon_conf(data: bytes) -> DaemonConf:
    """Parse the daemon config. ``DecodeError`` when it is not a JSON object;
    ``InvalidConfigError`` naming the key for a wrong type, a ``connectionLimit`` or
    ``metricsPort`` out of range, or a bad ``certDuration``."""
    obj = decode_object(bytes(data), "daemon config")
    return DaemonConf(
        raw=bytes(data),
        raw_map=obj,
        socket_dir=typed_field(obj, "socketDir", str, "") or DEFAULT_SOCKET_DIR,
        chroot_dir=typed_field(obj, "chrootDir", str, ""),
        log=parse_log_settings(obj, default_to_stderr=False),
        metrics_port=_ranged(obj, "metricsPort", 1, 65535),
        enable_pprof=typed_field(obj, "enablePprof", bool, False),
        connection_limit=_ranged(obj, "connectionLimit", 1, None),
        per_node_certificate=_per_node_certificate(obj),
        multus_config_file=typed_field(obj, "multusConfigFile", str, "")
        or DEFAULT_MULTUS_CONFIG_FILE,
        cni_config_dir=typed_field(obj, "cniConfigDir", str, "") or DEFAULT_CNI_CONFIG_DIR,
        multus_autoconfig_dir=typed_field(obj, "multusAutoconfigDir", str, ""),
        multus_master_cni=typed_field(obj, "multusMasterCNI", str, ""),
        cni_version=typed_field(obj, "cniVersion", str, ""),
        force_cni_version=typed_field(obj, "forceCNIVersion", bool, False),
        override_network_name=typed_field(obj, "overrideNetworkName", bool, False),
        readiness_indicator_file=typed_field(obj, READINESS_KEY, str, ""),
        daemon_socket_dir=typed_field(obj, "daemonSocketDir", str, ""),
        bin_dir=typed_field(obj, "binDir", str, ""),
        cni_dir=typed_field(obj, "cniDir", str, ""),
        capabilities=bool_map_field(obj, "capabilities"),
        namespace_isolation=typed_field(obj, "namespaceIsolation", bool, False),
        global_namespaces=typed_field(obj, "globalNamespaces", str, ""),
        auxiliary_cni_chain_name=typed_field(obj, "auxiliaryCNIChainName", str, ""),
        cluster_network=typed_field(obj, "clusterNetwork", str, ""),
        type=typed_field(obj, "type", str, "") or "multus-shim",
        nad_dir=typed_field(obj, "nadDir", str, ""),
        pod_dir=typed_field(obj, "podDir", str, ""),
        status_dir=typed_field(obj, "statusDir", str, ""),
        max_delegate_processes=_ranged(obj, "maxDelegateProcesses", 1, None),
        delegate_timeout_s=_ranged(obj, "delegateTimeoutSeconds", 1, 3600)
        or DEFAULT_DELEGATE_TIMEOUT_S,
        hot_plug=typed_field(obj, "hotPlug", bool, False),
    )


def overlay(request_conf: bytes, daemon_conf_raw: Mapping[str, Any], *, auto: bool) -> bytes:
    """The request's CNI config with every daemon key copied over it (daemon wins), as Go's
    ``overrideCNIConfigWithServerConfig``: the result is re-marshalled like a Go map.

    In auto mode ``readinessindicatorfile`` (in any spelling) is dropped from the result: the
    daemon waits for and watches the file itself, so no request waits again. (Go only skips
    the daemon's copy of the key; a generated config never carries it, so this is the same.)
    Raises ``DecodeError`` when ``request_conf`` is not a JSON object.
    """
    merged = decode_object(bytes(request_conf), "CNI config")
    merged.update(daemon_conf_raw)
    if auto:
        for key in [k for k in merged if k.lower() == READINESS_KEY]:
            del merged[key]
    return remarshal(merged)


def _ranged(obj: Mapping[str, Any], key: str, low: int, high: int | None) -> int | None:
    """An optional integer that must lie in [low, high] when set."""
    found, given = go_field(obj, key)
    if not found or given is None:
        return None
    value = typed_field(obj, key, int, 0)
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise InvalidConfigError(f"{key} must be {bound}, got {value}", field=key)
    return value


def _per_node_certificate(obj: Mapping[str, Any]) -> PerNodeCertificate | None:
    value = object_field(obj, "perNodeCertificate")
    if value is None:
        return None
    prefix = "perNodeCertificate."
    duration = typed_field(value, "certDuration", str, "", prefix)
    return PerNodeCertificate(
        enabled=typed_field(value, "enabled", bool, False, prefix),
        bootstrap_kubeconfig=typed_field(value, "bootstrapKubeconfig", str, "", prefix),
        cert_dir=typed_field(value, "certDir", str, "", prefix),
        cert_duration_s=(
            parse_go_duration(duration, field=f"{prefix}certDuration")
            if duration
            else DEFAULT_CERT_DURATION_S
        ),
    )


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,  # Go accepts both micro signs
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def parse_go_duration(text: str, *, field: str) -> float:
    """Go's ``time.ParseDuration`` ("10m", "1h30m", "1.5h", "300ms") in seconds; must be > 0."""
    body = text[1:] if text[:1] == "+" else text
    seconds, pos = 0.0, 0
    while pos < len(body):
        match = _DURATION_PART.match(body, pos)
        if match is None:
            raise InvalidConfigError(
                f"invalid duration {text!r}: use Go syntax such as 10m, 1h or 90s", field=field
            )
        seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if seconds <= 0:
        raise InvalidConfigError(f"duration {text!r} must be greater than zero", field=field)
    return seconds
